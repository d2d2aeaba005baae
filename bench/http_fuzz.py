"""Fuzz bench: the switch's commands API under >= 10,000 generated requests (issue 10, item 6).

The suite's ``tests/callcontrol/test_api_fuzz.py`` runs about 3,000 cases; this runs the same
hypothesis generators (structured requests, raw bytes, commands on live legs) for longer, counts
answers by status instead of stopping at the first bad one, and checks that an echo call placed
before the run still hears its tone at the end and that a new call works.

    .venv/bin/python bench/http_fuzz.py [--cases 10000] [--json]

Run it in a loopback-only environment (it only talks to 127.0.0.1). Exit 1 when any answer was a
5xx / not HTTP / not Telnyx-shaped, the switch logged an error, or calls stopped working.
"""

from __future__ import annotations

import argparse
import collections
import json
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "callcontrol"), str(ROOT / "tests" / "conformance")]

from ccfixtures import API_KEY, APP_NUMBER  # noqa: E402
from httpfuzz import LEG_SLOTS, FuzzTarget, bodies, check_response, raw_requests, requests  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import HypothesisDeprecationWarning  # noqa: E402

ACTIONS = ["answer", "bridge", "transfer", "enqueue", "leave_queue", "gather", "playback_start", "playback_stop",
           "hangup"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10_000, help="total requests (split 50/20/30 over the 3 kinds)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    warnings.simplefilter("ignore", HypothesisDeprecationWarning)
    statuses: collections.Counter[int] = collections.Counter()
    bad: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        target = FuzzTarget(Path(tmp)).start()
        try:
            t0 = time.monotonic()

            def record(raw: bytes) -> None:
                status, body = target.send(raw)
                statuses[status] += 1
                try:
                    check_response(status, body)
                except (AssertionError, ValueError) as exc:
                    if len(bad) < 20:
                        bad.append(f"{status}: {raw[:120]!r} -> {str(exc)[:200]}")

            opts = {"deadline": None, "database": None,
                    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much]}

            @settings(max_examples=args.cases * 5 // 10, **opts)  # type: ignore[arg-type]
            @given(requests())
            def structured(raw: bytes) -> None:
                record(raw)

            @settings(max_examples=args.cases * 2 // 10, **opts)  # type: ignore[arg-type]
            @given(raw_requests)
            def raw_bytes(raw: bytes) -> None:
                record(raw)

            @settings(max_examples=args.cases - args.cases * 7 // 10, **opts)  # type: ignore[arg-type]
            @given(st.sampled_from(LEG_SLOTS), st.sampled_from(ACTIONS), bodies())
            def commands(leg: str, action: str, body: dict[str, object]) -> None:
                if not target.live_legs():
                    out = json.dumps({"from": "+15550001009", "to": APP_NUMBER}).encode()
                    target.send(b"POST /switch/pstn_calls HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(out) + out)
                payload = json.dumps(body).encode()
                record((f"POST /v2/calls/{leg}/actions/{action} HTTP/1.1\r\nAuthorization: Bearer {API_KEY}\r\n"
                        f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload)

            structured()
            raw_bytes()
            commands()
            elapsed = time.monotonic() - t0
            call_alive = target.call_alive()
            new_call = target.new_call_works()
            errors = [r.getMessage() for r in target.errors.records]
        finally:
            target.stop()
    total = sum(statuses.values())
    result = {
        "cases": total,
        "seconds": round(elapsed, 1),
        "per_second": round(total / elapsed, 1) if elapsed else 0,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "5xx": sum(v for k, v in statuses.items() if k >= 500),
        "not_http": statuses.get(0, 0),
        "bad_answers": bad,
        "switch_errors_logged": len(errors),
        "call_kept_alive": call_alive,
        "new_call_after": new_call,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{total} requests in {result['seconds']} s ({result['per_second']}/s)")
        print("statuses: " + ", ".join(f"{k}: {v}" for k, v in result["statuses"].items()))
        print(f"5xx: {result['5xx']}, not HTTP: {result['not_http']}, badly shaped: {len(bad)}, "
              f"switch errors logged: {len(errors)}")
        print(f"echo call kept alive: {call_alive}; new call after the run: {new_call}; "
              f"max RSS {result['max_rss_mb']} MB")
        for line in bad[:5] + errors[:5]:
            print("  " + line)
    ok = not bad and not errors and call_alive and new_call
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
