#!/usr/bin/env python3
"""An example Call Control backend, written on the official Telnyx Python SDK (``pip install telnyx``).

It receives webhooks (Telnyx's format, signatures checked with the SDK) and answers with Voice
API commands through the SDK, implementing the two usage patterns:

Pattern 1 - the client application calls out:
    a client dials a number nobody owns -> the call is parked and ``call.initiated`` posted ->
    we ``answer`` it, ``dial`` the agent -> on the agent's ``call.answered`` we ``bridge`` the two.

Pattern 2 - a call from outside reaches one of our numbers:
    ``call.initiated`` (to one of ``--numbers``) -> we ``answer``, ``enqueue`` the caller
    (hold music) and ``dial`` the agent -> on the agent's ``call.answered`` we ``bridge``
    the caller out of the queue to the agent. With ``--ivr`` the caller first hears a spoken
    prompt and must press 1 (``gather_using_speak``).

State travels in ``client_state`` (base64 JSON), the way Telnyx recommends, so the backend could
be restarted between events. The same code runs against the local switch and against Telnyx;
only the API's base URL, the key and the names differ::

    .venv/bin/softphone switch serve --accounts examples/accounts.toml     # prints the public key
    .venv/bin/python examples/backend.py --public-key <that key>  # http://127.0.0.1:9000/webhooks

    # Against Telnyx (a public webhook URL pointing here, your connection and agent):
    TELNYX_API_KEY=KEY... TELNYX_PUBLIC_KEY=... python examples/backend.py \\
        --api https://api.telnyx.com --connection 1234567890 --agent sip:agent@sip.telnyx.com \\
        --numbers +13125550150
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import telnyx


def encode_state(state: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(state).encode()).decode()


def decode_state(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(base64.b64decode(raw))
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def base_url(api: str) -> str:
    """The SDK's ``base_url`` for an API root (``http://127.0.0.1:8766`` or ``https://api.telnyx.com``)."""
    api = api.rstrip("/")
    return api if api.endswith("/v2") else api + "/v2"


class Backend:
    """The call logic: one method per webhook event type, commands through ``self.telnyx``."""

    def __init__(
        self, client: telnyx.Telnyx, connection: str, agent: str, numbers: list[str], ivr: bool
    ) -> None:
        self.telnyx = client
        self.actions = client.calls.actions
        self.connection = connection
        self.agent = agent
        self.numbers = set(numbers)
        self.ivr = ivr
        self.ringing: dict[str, str] = {}  # caller call_control_id -> agent leg still ringing
        self.lock = threading.Lock()

    def log(self, text: str) -> None:
        print(text, flush=True)

    def action(self, name: str, ccid: str, **params: Any) -> None:
        """Run ``client.calls.actions.<name>(ccid, **params)``; an API error is logged, not raised."""
        self.log(f"  -> {name} {ccid}")
        try:
            getattr(self.actions, name)(ccid, **params)
        except telnyx.APIStatusError as exc:
            self.log(f"  ! {name}: HTTP {exc.status_code} {exc.response.text}")
        except telnyx.APIConnectionError as exc:
            self.log(f"  ! {name}: {exc}")

    def dial_agent(self, caller: dict[str, Any], role: str) -> None:
        state = encode_state({"role": role, "peer": caller["call_control_id"]})
        self.log(f"  -> dial {self.agent}")
        try:
            leg = self.telnyx.calls.dial(
                connection_id=self.connection,
                to=self.agent,
                from_=caller["from"],
                client_state=state,
                timeout_secs=30,
            )
        except telnyx.APIError as exc:
            self.log(f"  ! dial: {exc}")
            return
        if leg.data is not None:
            with self.lock:
                self.ringing[caller["call_control_id"]] = leg.data.call_control_id

    # --- events -----------------------------------------------------------------------

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("event_type", "")
        p = event.get("payload", {})
        self.log(
            f"{kind} {p.get('direction', '')} {p.get('from', '')} -> {p.get('to', '')} [{p.get('call_control_id')}]"
        )
        handler = getattr(self, "on_" + kind.replace(".", "_"), None)
        if handler is not None:
            handler(p, decode_state(p.get("client_state")))

    def on_call_initiated(self, p: dict[str, Any], state: dict[str, Any]) -> None:
        if p.get("direction") != "incoming" or state:
            return
        ccid = p["call_control_id"]
        if p.get("to") in self.numbers:  # pattern 2: an outside caller
            role = "ivr" if self.ivr else "queued"
            self.action("answer", ccid, client_state=encode_state({"role": role}))
        else:  # pattern 1: our client application calling out
            self.action("answer", ccid, client_state=encode_state({"role": "caller"}))

    def on_call_answered(self, p: dict[str, Any], state: dict[str, Any]) -> None:
        ccid = p["call_control_id"]
        role = state.get("role")
        if role == "caller":
            self.dial_agent(p, "agent")
        elif role == "queued":
            self.action("enqueue", ccid, queue_name="support")
            self.dial_agent(p, "agent")
        elif role == "ivr":
            self.action(
                "gather_using_speak",
                ccid,
                payload="Press 1 for support.",
                voice="female",
                language="en-US",
                maximum_digits=1,
                timeout_millis=15000,
            )
        elif role == "agent":
            with self.lock:
                self.ringing.pop(state["peer"], None)
            self.action("bridge", state["peer"], call_control_id_to_bridge_with=ccid)

    def on_call_gather_ended(self, p: dict[str, Any], state: dict[str, Any]) -> None:
        ccid = p["call_control_id"]
        self.log(f"  digits {p.get('digits')!r} ({p.get('status')})")
        if p.get("digits") == "1":
            self.action("enqueue", ccid, queue_name="support", client_state=encode_state({"role": "queued"}))
            self.dial_agent(p, "agent")
        else:
            self.action("hangup", ccid)

    def on_call_hangup(self, p: dict[str, Any], state: dict[str, Any]) -> None:
        ccid = p["call_control_id"]
        with self.lock:
            agent = self.ringing.pop(ccid, None)
            peer = state.get("peer", "")
            unanswered_agent = state.get("role") == "agent" and self.ringing.get(peer) == ccid
            if unanswered_agent:
                del self.ringing[peer]
        if agent is not None:  # the caller gave up while the agent's phone rang
            self.action("hangup", agent)
        if unanswered_agent:  # the agent never answered: let the caller go
            self.action("hangup", peer)


def make_handler(backend: Backend, client: telnyx.Telnyx) -> type[BaseHTTPRequestHandler]:
    verify = bool(client.public_key)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            raw = self.rfile.read(length).decode("utf-8", errors="replace")
            try:
                if verify:  # the signature (ed25519 over "timestamp|body") and a fresh timestamp
                    client.webhooks.unwrap(raw, headers=dict(self.headers.items()))
                body = json.loads(raw)
            except Exception as exc:  # a bad signature, a stale timestamp, not JSON
                backend.log(f"  ! webhook refused: {exc}")
                self.send_response(400)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            # Answer the webhook first; act afterwards (commands may trigger more webhooks).
            data = body.get("data", {}) if isinstance(body, dict) else {}
            threading.Thread(target=backend.handle, args=(data,), daemon=True).start()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--api", default="http://127.0.0.1:8766", help="the API root (the switch's, or Telnyx's)")
    ap.add_argument(
        "--api-key", default=os.environ.get("TELNYX_API_KEY", "KEYlocal"), help="API key (env TELNYX_API_KEY)"
    )
    ap.add_argument(
        "--public-key",
        default=os.environ.get("TELNYX_PUBLIC_KEY", ""),
        help="webhook-signing public key (env TELNYX_PUBLIC_KEY): webhooks not signed by it are refused",
    )
    ap.add_argument("--connection", default="app", help="connection_id for the legs we dial")
    ap.add_argument("--agent", default="agent", help="who answers: a SIP username or credential")
    ap.add_argument("--numbers", default="+13125550150", help="our numbers (comma separated): pattern 2")
    ap.add_argument("--ivr", action="store_true", help="pattern 2: a spoken prompt, press 1, before queueing")
    args = ap.parse_args(argv)
    client = telnyx.Telnyx(
        api_key=args.api_key, base_url=base_url(args.api), public_key=args.public_key or None, max_retries=1
    )
    backend = Backend(client, args.connection, args.agent, args.numbers.split(","), args.ivr)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(backend, client))
    print(f"backend listening on http://{args.host}:{server.server_address[1]}/webhooks", flush=True)
    if not args.public_key:
        print("webhook signatures are not checked (no --public-key / TELNYX_PUBLIC_KEY)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
