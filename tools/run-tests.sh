#!/usr/bin/env bash
# Runs the whole suite: ruff, mypy --strict, pytest with coverage (gates below: softphone/protocol
# and softphone as a whole; they apply only when the whole suite runs, i.e. with no arguments).
#
# As root (with unshare), everything runs in a private network namespace that has only `lo`, so
# the switch, the softphone and Chromium can reach nothing but 127.0.0.1. A private PulseAudio
# daemon (tools/virtual-audio.sh) provides the audio devices and is stopped on exit.
# A missing dependency is an error, never a skip: run `make deps` (or just `make test`).
#
# Extra arguments go to pytest, e.g. `tools/run-tests.sh -k conformance` (lint and types still run).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

PROTOCOL_COVERAGE=100  # the sans-I/O core: every line is plain data in, data out
TOTAL_COVERAGE=90     # the whole package, softphone subprocesses included (pyproject: patch = subprocess)

# (a) loopback-only network namespace
if [[ -z ${SOFTPHONE_NETNS:-} ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v unshare >/dev/null && command -v ip >/dev/null \
      && unshare --net true 2>/dev/null; then
    export SOFTPHONE_NETNS=loopback-only
    exec unshare --net -- bash -c 'ip link set lo up && exec "$0" "$@"' "$root/tools/run-tests.sh" "$@"
  fi
  export SOFTPHONE_NETNS=host
  echo "run-tests: note: not root or no usable unshare: running in the host network namespace" \
       "(Chromium may also gather non-loopback ICE candidates)" >&2
fi

# Fail loudly on anything missing.
venv=$root/.venv
missing=()
[[ -x $venv/bin/python ]] || missing+=(".venv (pip install -e '.[dev]')")
[[ -x ${SOFTPHONE_CHROMIUM:-/usr/bin/chromium} ]] || missing+=("chromium (${SOFTPHONE_CHROMIUM:-/usr/bin/chromium})")
command -v pulseaudio >/dev/null || missing+=(pulseaudio)
command -v pactl >/dev/null || missing+=("pactl (pulseaudio-utils)")
[[ -f tests/conformance/node_modules/@telnyx/webrtc/lib/bundle.js ]] \
  || missing+=("tests/conformance/node_modules (npm ci)")
if [[ -x $venv/bin/python ]] && ! "$venv/bin/python" -c 'import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ("playwright", "pytest_cov", "xdist", "websockets")))' 2>/dev/null; then
  missing+=("python packages playwright/pytest-cov/pytest-xdist (pip install -e '.[dev]')")
fi
if ((${#missing[@]})); then
  printf 'run-tests: MISSING DEPENDENCY: %s\n' "${missing[@]}" >&2
  echo "run-tests: run \`make deps\` (or \`make test\`, which installs them)" >&2
  exit 1
fi
export PATH=$venv/bin:$PATH

# Per-run scratch space, so engineers running the suite at the same time in one tree don't collide.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/softphone-tests.XXXXXX")
export SOFTPHONE_AUDIO_DIR=$scratch/audio
export COVERAGE_FILE=$scratch/coverage
cleanup() {
  "$root/tools/virtual-audio.sh" stop >/dev/null 2>&1 || true
  rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# (b) virtual audio devices
eval "$("$root/tools/virtual-audio.sh" start)"
echo "run-tests: network namespace: $SOFTPHONE_NETNS; virtual audio: $PULSE_SERVER" >&2

# (c) the checks; all run, the summary says which failed
failed=()
step() {
  local name=$1 start rc
  shift
  echo "==> $name" >&2
  start=$SECONDS
  set +e
  "$@"
  rc=$?
  set -e
  echo "<== $name: exit $rc in $((SECONDS - start)) s" >&2
  ((rc == 0)) || failed+=("$name (exit $rc)")
  return 0
}

# The whole suite runs on parallel workers (pytest-xdist), then the tests that need the virtual audio
# devices (marked `pulseaudio` by tests/conftest.py) in a serial pass of their own, on a quiet machine.
# Most of the suite's time is real-time waiting (calls, speech, timeouts), so more workers than cores
# pays. SOFTPHONE_TEST_WORKERS overrides the count (0: one serial pass); a run with arguments (a part
# of the suite) is one serial pass unless it is set.
if (($# == 0)); then
  workers=${SOFTPHONE_TEST_WORKERS:-4}
else
  workers=${SOFTPHONE_TEST_WORKERS:-0}
fi

pytest_run() {
  local rc=0
  python -m pytest -p no:cacheprovider -ra --cov=softphone --cov-report= "$@" || rc=$?
  if ((rc == 5)); then
    echo "run-tests: pytest collected no tests: that is an error" >&2
  fi
  return "$rc"
}

step "ruff" ruff check softphone tests
step "mypy" mypy softphone
if ((workers > 0 && $# == 0)); then
  step "pytest (parallel, $workers workers)" pytest_run -n "$workers" --dist loadgroup -m "not pulseaudio"
  step "pytest (the audio-device tests, serial)" pytest_run --cov-append -m pulseaudio
elif ((workers > 0)); then
  step "pytest ($workers workers)" pytest_run -n "$workers" --dist loadgroup "$@"
else
  step "pytest" pytest_run "$@"
fi
if (($# == 0)); then  # the gates apply to the whole suite, not to a part chosen with arguments
  step "coverage of softphone/protocol (>= $PROTOCOL_COVERAGE %)" \
    coverage report --include='softphone/protocol/*' --fail-under="$PROTOCOL_COVERAGE" --show-missing
  step "coverage of softphone (>= $TOTAL_COVERAGE %)" \
    coverage report --sort=cover --fail-under="$TOTAL_COVERAGE"
fi

if ((${#failed[@]})); then
  printf 'run-tests: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "run-tests: all checks passed" >&2
