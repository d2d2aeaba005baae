"""The switch starts fast and serves wss:// with a certificate (openssl makes one: a subprocess and
sockets, so not in tests/unit; the rest of the switch's unit tests are in tests/unit/switch/)."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from pathlib import Path

from websockets.asyncio.client import connect

from softphone.switch import Switch


async def test_start_is_fast_and_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    t0 = time.perf_counter()
    async with Switch(port=0, tls_cert=cert, tls_key=key) as sw:
        assert time.perf_counter() - t0 < 2.0
        assert sw.url.startswith("wss://127.0.0.1:")
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False
        async with connect(sw.url, ssl=ctx) as ws:
            await ws.send(
                json.dumps(
                    {"jsonrpc": "2.0", "id": 1, "method": "login", "params": {"login": "demo", "passwd": "demo-secret"}}
                )
            )
            assert json.loads(await ws.recv())["result"]["message"] == "logged in"
