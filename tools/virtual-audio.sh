#!/usr/bin/env bash
# Virtual audio devices for a machine without a sound card (CI, containers).
#
# Starts a private PulseAudio daemon (no system service, no D-Bus, fine as root) with
#   spk       null sink                  the softphone's speaker; record spk.monitor to check output
#   micfeed   null sink                  tests play into it (paplay --device=micfeed tone.wav)
#   mic       remap of micfeed.monitor   the softphone's microphone (default source)
# and ALSA names for PortAudio, in a private XDG_CONFIG_HOME (nothing under $HOME is touched):
#   vspeaker, vspeaker_monitor, vmic, vmicfeed
#
# Needs the Debian packages pulseaudio pulseaudio-utils libasound2-plugins (`make deps`).
#
#   eval "$(tools/virtual-audio.sh start)"   start (or reuse) the daemon; prints export lines
#   tools/virtual-audio.sh env               print the export lines again
#   tools/virtual-audio.sh stop              stop the daemon it started (by PID) and remove its folder
#
# The folder is $SOFTPHONE_AUDIO_DIR (default ${TMPDIR:-/tmp}/softphone-audio-$UID).
# The null sinks get norewinds=1: without it PortAudio 19.6 through the ALSA pulse plugin runs
# at 75-90 % of real time with its audio thread spinning; with it, 48000 frames/s at ~2 % CPU.
set -euo pipefail

dir=${SOFTPHONE_AUDIO_DIR:-${TMPDIR:-/tmp}/softphone-audio-$(id -u)}
runtime=$dir/runtime
config=$dir/config
pidfile=$dir/pulseaudio.pid
sink_opts=${SOFTPHONE_AUDIO_SINK_OPTS-norewinds=1}

env_lines() {
  cat <<EOT
export XDG_RUNTIME_DIR=$runtime
export XDG_CONFIG_HOME=$config
export PULSE_RUNTIME_PATH=$runtime/pulse
export PULSE_STATE_PATH=$dir/state
export PULSE_SERVER=unix:$runtime/pulse/native
export PA_CI_BASE=$dir
export SOFTPHONE_AUDIO_DIR=$dir
export JACK_NO_START_SERVER=1
EOT
}

# Alive: our PID, still a pulseaudio, not a zombie (once it exits, whatever adopted it may take a
# second to reap it; waiting for that would only slow every test run down).
alive() {
  local pid=$1 stat
  [[ -r /proc/$pid/stat ]] || return 1
  [[ $(</proc/"$pid"/comm) == pulseaudio ]] || return 1
  stat=$(</proc/"$pid"/stat)
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

running() {
  [[ -f $pidfile ]] && alive "$(<"$pidfile")"
}

write_config() {
  mkdir -p "$runtime/pulse" "$config/alsa" "$dir/state"
  chmod 700 "$runtime" "$runtime/pulse"   # PulseAudio refuses a runtime dir others may write

  cat >"$dir/virtual.pa" <<EOT
load-module module-native-protocol-unix auth-anonymous=1 socket=$runtime/pulse/native
load-module module-null-sink sink_name=spk rate=48000 channels=2 $sink_opts sink_properties=device.description=Softphone_virtual_speaker
load-module module-null-sink sink_name=micfeed rate=48000 channels=2 $sink_opts sink_properties=device.description=Softphone_virtual_mic_feed
load-module module-remap-source source_name=mic master=micfeed.monitor source_properties=device.description=Softphone_virtual_mic
set-default-sink spk
set-default-source mic
EOT

  mkdir -p "$config/pulse"   # PulseAudio reads $XDG_CONFIG_HOME/pulse/daemon.conf
  printf 'default-sample-rate = 48000\nexit-idle-time = -1\n' >"$config/pulse/daemon.conf"

  # alsa-lib reads $XDG_CONFIG_HOME/alsa/asoundrc; the pulse PCM type comes from libasound2-plugins.
  local name device desc
  : >"$config/alsa/asoundrc"
  while read -r name device desc; do
    printf 'pcm.%s { type pulse; device "%s"; hint { show on; description "%s" } }\n' \
      "$name" "$device" "$desc" >>"$config/alsa/asoundrc"
  done <<'EOT'
vspeaker         spk          Softphone virtual speaker
vspeaker_monitor spk.monitor  What was played to the virtual speaker
vmic             mic          Softphone virtual microphone
vmicfeed         micfeed      Play here to feed the virtual microphone
EOT
}

start() {
  if ! command -v pulseaudio >/dev/null || ! command -v pactl >/dev/null; then
    echo "virtual-audio: pulseaudio/pactl not installed (run \`make deps\`)" >&2
    exit 1
  fi
  if running; then env_lines; return 0; fi
  write_config
  eval "$(env_lines)"
  # -n: skip /etc/pulse/default.pa (udev, D-Bus, X11). No --daemonize: we keep the real PID.
  setsid pulseaudio -n -F "$dir/virtual.pa" --daemonize=no --use-pid-file=no \
    --exit-idle-time=-1 --log-target=file:"$dir/pulseaudio.log" \
    --log-level="${SOFTPHONE_AUDIO_LOGLEVEL:-notice}" </dev/null >/dev/null 2>&1 &
  echo $! >"$pidfile"
  local i
  for ((i = 0; i < 100; i++)); do
    if pactl info >/dev/null 2>&1; then env_lines; return 0; fi
    running || break
    sleep 0.1
  done
  echo "virtual-audio: PulseAudio did not come up; its log:" >&2
  cat "$dir/pulseaudio.log" >&2 2>/dev/null || true
  stop
  exit 1
}

stop() {
  if running; then
    local pid i
    pid=$(<"$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      alive "$pid" || break
      sleep 0.05
    done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -rf "$dir"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  env) env_lines ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
