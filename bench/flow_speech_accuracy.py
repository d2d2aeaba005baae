"""Recognition accuracy of ``expect speech`` through a real call (the local switch's echo service).

For each prompt: ``say PROMPT`` (flite, into the call) or ``play FILE`` (a WAV spoken by espeak-ng),
the echo brings it back, then ``expect speech PROMPT`` (a hit or a miss) and, in a second file,
``expect speech WRONG`` for a different prompt (a false match when it passes). The expect-speech
latency is the expectation's wait after ``say``/``play`` returned (the phrase's end, plus the echo's
few milliseconds: an upper bound; 0 when interim words matched before the phrase ended).

    .venv/bin/python bench/flow_speech_accuracy.py [--json] [-v]

Starts its own ``softphone switch serve`` on a free port (loopback) and prints a table.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPTS = [
    "welcome to the test line",
    "press one for sales",
    "press two for support",
    "please enter your account number",
    "thank you for calling",
    "your call is important to us",
    "the office is closed today",
    "please hold while we connect you",
    "say yes or no",
    "goodbye and have a nice day",
    "to repeat this menu press nine",
    "you have three new messages",
]
# A wrong phrase for each prompt, never spoken, of the same IVR kind (some share words): must fail.
WRONG = [
    "welcome to the sales department",
    "press three for billing",
    "press four for the operator",
    "please enter your pin code",
    "thanks for waiting",
    "your order has shipped",
    "the store is open tomorrow",
    "please wait for the next agent",
    "say your name after the tone",
    "good morning how can I help",
    "to hear these options again press star",
    "you have no saved messages",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


HEARD: list[str] = []  # the failure messages (what was heard instead)


def run_file(env: dict[str, str], path: Path, text: str) -> list[dict[str, object]]:
    path.write_text(text)
    r = subprocess.run([sys.executable, "-m", "softphone", "--json", "run", "--keep-going", str(path)],
                       capture_output=True, text=True, env={**env, "COLUMNS": "1000"}, timeout=600, check=False)
    HEARD.extend(line.split(": ", 2)[-1] for line in r.stderr.splitlines() if "expect speech:" in line)
    last = json.loads(r.stdout.splitlines()[-1])
    (timings,) = last["timings"].values()
    return list(timings["expects"])


def main() -> int:
    as_json = "--json" in sys.argv[1:]
    tmp = Path(tempfile.mkdtemp(prefix="flow-accuracy-"))
    port = free_port()
    switch = subprocess.Popen([sys.executable, "-m", "softphone", "switch", "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        cfg = tmp / "config.toml"
        cfg.write_text(f'default_profile = "sw"\n[profiles.sw]\nserver = "ws://127.0.0.1:{port}"\n'
                       'username = "demo"\npassword = "demo-secret"\naudio_backend = "null"\n')
        cfg.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "SOFTPHONE_"))}
        env.update(SOFTPHONE_CONFIG=str(cfg), SOFTPHONE_DATA_DIR=str(tmp / "data"))
        files = []
        for i, prompt in enumerate(PROMPTS):
            wav = tmp / f"p{i}.wav"
            subprocess.run(["espeak-ng", "-w", str(wav), prompt], check=True)
            files.append(wav)
        rows = []
        for voice, speak in (("flite (say)", lambda i: f'say "{PROMPTS[i]}"'),
                             ("espeak-ng (play FILE)", lambda i: f"play {files[i]}")):
            right = "dial echo\nwait call active 10\n" + "".join(
                f'{speak(i)}\nexpect speech "{p}" 8\nwait prompt-end 5\n' for i, p in enumerate(PROMPTS))
            wrong = "dial echo\nwait call active 10\n" + "".join(
                f'{speak(i)}\nexpect speech "{WRONG[i]}" 4\n' for i in range(len(PROMPTS)))
            hits = [e for e in run_file(env, tmp / "right.txt", right) if str(e["expect"]).startswith("speech")]
            false = [e for e in run_file(env, tmp / "wrong.txt", wrong) if str(e["expect"]).startswith("speech")]
            waits = [float(e["waited_s"]) for e in hits if e["ok"]]  # type: ignore[arg-type]
            rows.append({
                "voice": voice, "prompts": len(PROMPTS),
                "hits": sum(1 for e in hits if e["ok"]), "misses": sum(1 for e in hits if not e["ok"]),
                "missed": [str(e["expect"])[7:] for e in hits if not e["ok"]],
                "false_matches": sum(1 for e in false if e["ok"]),
                "latency_median_s": round(statistics.median(waits), 3) if waits else None,
                "latency_max_s": round(max(waits), 3) if waits else None,
            })
    finally:
        switch.terminate()
        switch.wait(10)
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'voice':<24}{'prompts':>8}{'hits':>6}{'misses':>8}{'false':>7}{'lat p50':>9}{'lat max':>9}")
        for r in rows:
            print(f"{r['voice']:<24}{r['prompts']:>8}{r['hits']:>6}{r['misses']:>8}{r['false_matches']:>7}"
                  f"{r['latency_median_s']!s:>9}{r['latency_max_s']!s:>9}")
            if r["missed"]:
                print(f"  missed: {r['missed']}")
        if "-v" in sys.argv[1:]:
            print("\n".join(HEARD))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
