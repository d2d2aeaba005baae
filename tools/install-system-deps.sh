#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the project needs, only those that are missing.
# With everything present it costs one dpkg-query (no apt-get update, no network).
set -euo pipefail

packages=(
  portaudio19-dev pulseaudio pulseaudio-utils libasound2-plugins   # PyAudio + virtual audio
  chromium                                                         # the official JS SDK under test
  tmux sox ffmpeg iproute2                                         # terminal tests, audio tools, `ip`
  flite espeak-ng                                                  # offline text to speech (speak, TeXML Say)
  gcc python3-dev python3-venv                                     # building PyAudio on a bare machine
)

installed=" $(dpkg-query -W -f='${db:Status-Status}:${Package} ' "${packages[@]}" 2>/dev/null || true) "
missing=()
for pkg in "${packages[@]}"; do
  [[ $installed == *" installed:$pkg "* ]] || missing+=("$pkg")
done
# node/npm may come from elsewhere (e.g. a nodejs build that bundles npm): only the commands matter.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi

((${#missing[@]})) || exit 0

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "install-system-deps: missing packages (${missing[*]}) and not root, with no sudo" >&2
    exit 1
  fi
fi
echo "install-system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
