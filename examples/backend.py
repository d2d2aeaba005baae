#!/usr/bin/env python3
"""An example Call Control backend for the local switch (standard library only).

It receives the switch's webhooks (Telnyx's format) and answers with Voice API commands,
implementing the two usage patterns:

Pattern 1 - the client application calls out:
    a client dials a number nobody owns -> the switch parks the call and posts
    ``call.initiated`` -> we ``answer`` it, ``dial`` the agent client -> on the agent's
    ``call.answered`` we ``bridge`` the two.

Pattern 2 - a call from outside reaches one of our numbers:
    ``call.initiated`` (to one of ``--numbers``) -> we ``answer``, ``enqueue`` the caller
    (hold tone) and ``dial`` the agent -> on the agent's ``call.answered`` we ``bridge``
    the caller out of the queue to the agent. With ``--ivr`` the caller first hears a
    prompt tone and must press 1 (``gather``).

State travels in ``client_state`` (base64 JSON), the way Telnyx recommends, so the
backend could be restarted between events. Run it next to the switch::

    .venv/bin/softphone switch serve --accounts examples/accounts.toml
    python examples/backend.py            # listens on http://127.0.0.1:9000/webhooks
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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


class Backend:
    """The call logic: one method per webhook event type."""

    def __init__(self, api: str, api_key: str, connection: str, agent: str, numbers: list[str], ivr: bool) -> None:
        self.api = api.rstrip("/")
        self.api_key = api_key
        self.connection = connection
        self.agent = agent
        self.numbers = set(numbers)
        self.ivr = ivr
        self.ringing: dict[str, str] = {}  # caller call_control_id -> agent leg still ringing
        self.lock = threading.Lock()

    def log(self, text: str) -> None:
        print(text, flush=True)

    def command(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a Voice API command; returns ``data`` (or {} after logging an error)."""
        req = urllib.request.Request(
            self.api + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                data: dict[str, Any] = json.loads(resp.read()).get("data", {})
                return data
        except urllib.error.HTTPError as exc:
            self.log(f"  ! {path}: HTTP {exc.code} {exc.read().decode(errors='replace')}")
        except OSError as exc:
            self.log(f"  ! {path}: {exc}")
        return {}

    def action(self, ccid: str, name: str, **body: Any) -> None:
        self.log(f"  -> {name} {ccid}")
        self.command(f"/v2/calls/{ccid}/actions/{name}", body)

    def dial_agent(self, caller: dict[str, Any], role: str) -> None:
        state = encode_state({"role": role, "peer": caller["call_control_id"]})
        self.log(f"  -> dial {self.agent}")
        leg = self.command(
            "/v2/calls",
            {
                "connection_id": self.connection,
                "to": self.agent,
                "from": caller["from"],
                "client_state": state,
                "timeout_secs": 30,
            },
        )
        if leg:
            with self.lock:
                self.ringing[caller["call_control_id"]] = leg["call_control_id"]

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
            self.action(ccid, "answer", client_state=encode_state({"role": role}))
        else:  # pattern 1: our client application calling out
            self.action(ccid, "answer", client_state=encode_state({"role": "caller"}))

    def on_call_answered(self, p: dict[str, Any], state: dict[str, Any]) -> None:
        ccid = p["call_control_id"]
        role = state.get("role")
        if role == "caller":
            self.dial_agent(p, "agent")
        elif role == "queued":
            self.action(ccid, "enqueue", queue_name="support")
            self.dial_agent(p, "agent")
        elif role == "ivr":
            self.action(ccid, "gather", maximum_digits=1, timeout_millis=15000, audio_url="tone:660:400")
        elif role == "agent":
            with self.lock:
                self.ringing.pop(state["peer"], None)
            self.action(state["peer"], "bridge", call_control_id=ccid)

    def on_call_gather_ended(self, p: dict[str, Any], state: dict[str, Any]) -> None:
        ccid = p["call_control_id"]
        self.log(f"  digits {p.get('digits')!r} ({p.get('status')})")
        if p.get("digits") == "1":
            self.action(ccid, "enqueue", queue_name="support", client_state=encode_state({"role": "queued"}))
            self.dial_agent(p, "agent")
        else:
            self.action(ccid, "hangup")

    def on_call_hangup(self, p: dict[str, Any], state: dict[str, Any]) -> None:
        ccid = p["call_control_id"]
        with self.lock:
            agent = self.ringing.pop(ccid, None)
            peer = state.get("peer", "")
            unanswered_agent = state.get("role") == "agent" and self.ringing.get(peer) == ccid
            if unanswered_agent:
                del self.ringing[peer]
        if agent is not None:  # the caller gave up while the agent's phone rang
            self.action(agent, "hangup")
        if unanswered_agent:  # the agent never answered: let the caller go
            self.action(peer, "hangup")


def make_handler(backend: Backend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                self.send_response(400)
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
    ap.add_argument("--api", default="http://127.0.0.1:8766", help="the switch's commands API")
    ap.add_argument("--api-key", default="KEYlocal", help="the connection's api_key")
    ap.add_argument("--connection", default="app", help="connection_id for the legs we dial")
    ap.add_argument("--agent", default="agent", help="who answers: a SIP username or credential")
    ap.add_argument("--numbers", default="+13125550150", help="our numbers (comma separated): pattern 2")
    ap.add_argument("--ivr", action="store_true", help="pattern 2: gather one digit (press 1) before queueing")
    args = ap.parse_args(argv)
    backend = Backend(args.api, args.api_key, args.connection, args.agent, args.numbers.split(","), args.ivr)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(backend))
    print(f"backend listening on http://{args.host}:{server.server_address[1]}/webhooks", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
