"""`softphone doctor` end to end: the real CLI against the local switch (wss:// with certificates made here),
a STUN/TURN responder on loopback, a server that never answers, a certificate for another name, wrong
credentials; the JSON shape and the exit codes (0 all ok, 10 a warning, 11 a failure)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from stun_responder import StunResponder

from softphone.switch import Switch

pytestmark = pytest.mark.e2e

PASSWORD = "demo-secret"
TURN_USER, TURN_SECRET = "turnuser", "turn-secret-7f3a"


def make_cert(directory: Path, *, cn: str = "127.0.0.1", ips: tuple[str, ...] = ("127.0.0.1",),
              dns: tuple[str, ...] = (), days: float = 30) -> tuple[Path, Path]:
    """A self-signed certificate (EC P-256) and its key as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    alt = [x509.IPAddress(ipaddress.ip_address(i)) for i in ips] + [x509.DNSName(d) for d in dns]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=max(0.01, -days + 1)))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{cn}.crt", directory / f"{cn}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def write_config(tmp_path: Path, server: str, *, password: str = PASSWORD, insecure: bool = False,
                 ice: str = "[]") -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        'default_profile = "t"\n[profiles.t]\n'
        f'server = "{server}"\nusername = "demo"\npassword = "{password}"\naudio_backend = "null"\n'
        f"insecure = {'true' if insecure else 'false'}\nice_servers = {ice}\n")
    cfg.chmod(0o600)
    return cfg


def environment(tmp_path: Path, cfg: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "SOFTPHONE_", "SSL_CERT_"))}
    env.update(SOFTPHONE_CONFIG=str(cfg), SOFTPHONE_DATA_DIR=str(tmp_path / "data"), COLUMNS="200", **extra)
    return env


async def doctor(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "softphone", "doctor", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def rows(stdout: str) -> dict[str, dict[str, Any]]:
    report = json.loads(stdout)
    return {f"{c['group']} {c['name']}": c for c in report["checks"]}


@pytest.fixture
async def tls_switch(tmp_path: Path) -> AsyncIterator[tuple[Switch, Path]]:
    cert, key = make_cert(tmp_path)
    async with Switch(port=0, tls_cert=cert, tls_key=key) as sw:
        yield sw, cert


@pytest.fixture
async def stun_server() -> AsyncIterator[StunResponder]:
    async with StunResponder(users={TURN_USER: TURN_SECRET}) as s:
        yield s


async def test_all_ok_over_wss_with_a_trusted_self_signed_certificate(
        tmp_path: Path, tls_switch: tuple[Switch, Path]) -> None:
    sw, cert = tls_switch
    async with StunResponder(users={TURN_USER: TURN_SECRET}, tls=(cert, tmp_path / "127.0.0.1.key")) as s:
        await _all_ok(tmp_path, sw, cert, s)


async def _all_ok(tmp_path: Path, sw: Switch, cert: Path, stun_server: StunResponder) -> None:
    ice = (f'[{{ urls = "{stun_server.url}" }}, {{ urls = ["{stun_server.turn_url}", "{stun_server.tcp_url}", '
           f'"{stun_server.tls_url}"], username = "{TURN_USER}", credential = "{TURN_SECRET}" }}]')
    env = environment(tmp_path, write_config(tmp_path, sw.url, ice=ice), SSL_CERT_FILE=str(cert))
    code, out, err = await doctor(env, "--json")
    report = json.loads(out)
    assert code == 0 and report["exit_code"] == 0 and report["verdict"] == "ok", (out, err)
    assert set(report) >= {"v", "type", "ts", "profile", "server", "verdict", "exit_code", "counts", "checks"}
    assert report["type"] == "doctor" and report["profile"] == "t" and report["server"] == sw.url
    for check in report["checks"]:
        assert set(check) == {"group", "name", "verdict", "detail", "hint", "ms", "data"}, check
        assert check["verdict"] in ("ok", "skip"), check
    r = rows(out)
    assert r["server tls"]["verdict"] == "ok" and "self-signed, trusted here" in r["server tls"]["detail"]
    assert r["server tls"]["data"]["subject"] == "127.0.0.1" and r["server tls"]["data"]["days_left"] >= 29
    assert r["server websocket"]["verdict"] == "ok"
    assert r["server login"]["verdict"] == "ok" and r["server login"]["data"]["login_rtt_ms"] is not None
    assert r["server gateway"]["data"]["state"] == "REGED"
    stun_row = r[f"ice {stun_server.url}"]
    assert stun_row["data"]["reflexive"].startswith("127.0.0.1:") and stun_row["ms"] is not None
    turn_row = r[f"ice {stun_server.turn_url}"]
    assert turn_row["verdict"] == "ok" and turn_row["data"]["relayed"] == "127.0.0.1:50000", turn_row
    # The 401 round, the authenticated Allocate, then the release (Refresh lifetime 0) on the same 5-tuple.
    tcp_row = r[f"ice {stun_server.tcp_url}"]
    assert tcp_row["verdict"] == "ok" and tcp_row["data"]["server"] == f"127.0.0.1:{stun_server.tcp_port}", tcp_row
    assert r[f"ice {stun_server.tls_url}"]["verdict"] == "ok", r[f"ice {stun_server.tls_url}"]  # TURN over TLS
    turn_steps = [r for r in stun_server.requests if r[0] != "binding"]
    assert turn_steps.count(("allocate", "401")) == 3 and turn_steps.count(("refresh", "lifetime 0")) == 3
    assert not stun_server.allocations
    assert r["clock server time"]["verdict"] == "ok" and abs(r["clock server time"]["data"]["skew_s"]) < 3
    for name in ("python", "aiortc", "pyav", "libopus", "portaudio"):
        assert r[f"versions {name}"]["verdict"] == "ok", r[f"versions {name}"]
    for secret in (PASSWORD, TURN_SECRET):
        assert secret not in out + err
    # Piped without --json: one tab-separated line per check, then the result line.
    code, out, err = await doctor(env)
    lines = out.splitlines()
    assert code == 0 and any(line.startswith("server tls\tOK") for line in lines), (out, err)
    assert lines[-1].startswith("result\tOK:") and "(exit 0)" in lines[-1]


async def test_an_untrusted_self_signed_certificate_is_a_warning_with_the_trust_hint(
        tmp_path: Path, tls_switch: tuple[Switch, Path]) -> None:
    sw, _ = tls_switch
    env = environment(tmp_path, write_config(tmp_path, sw.url))
    code, out, err = await doctor(env, "--json")
    r = rows(out)
    assert r["server tls"]["verdict"] == "warn" and "self-signed" in r["server tls"]["detail"], r["server tls"]
    assert "SSL_CERT_FILE" in r["server tls"]["hint"] and "insecure" in r["server tls"]["hint"]
    assert r["server websocket"]["verdict"] == "fail"  # the client would refuse it just the same
    assert r["server login"]["verdict"] == "skip"
    assert code == 11 and json.loads(out)["exit_code"] == 11

    # insecure = true: the client connects; the certificate stays a warning (exit 10).
    env = environment(tmp_path, write_config(tmp_path, sw.url, insecure=True))
    code, out, err = await doctor(env, "--json")
    r = rows(out)
    assert r["server tls"]["verdict"] == "warn" and "insecure = true" in r["server tls"]["detail"]
    assert r["server login"]["verdict"] == "ok" and code == 10, (out, err)


async def test_a_certificate_for_another_name_fails_with_a_hint(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, cn="other.example", ips=(), dns=("other.example",))
    async with Switch(port=0, tls_cert=cert, tls_key=key) as sw:
        env = environment(tmp_path, write_config(tmp_path, sw.url), SSL_CERT_FILE=str(cert))
        code, out, _err = await doctor(env, "--json")
    tls = rows(out)["server tls"]
    assert tls["verdict"] == "fail" and "other.example" in tls["detail"] and "127.0.0.1" in tls["detail"], tls
    assert "other.example" in tls["hint"]
    assert code == 11


@pytest.mark.parametrize("days, verdict, words, code", [(-1, "fail", "has expired", 11),
                                                        (5, "warn", "expires soon", 10)])
async def test_an_expired_or_expiring_certificate(tmp_path: Path, days: float, verdict: str, words: str,
                                                  code: int) -> None:
    cert, key = make_cert(tmp_path, days=days)
    async with Switch(port=0, tls_cert=cert, tls_key=key) as sw:
        env = environment(tmp_path, write_config(tmp_path, sw.url), SSL_CERT_FILE=str(cert))
        got, out, _ = await doctor(env, "--json")
    tls = rows(out)["server tls"]
    assert tls["verdict"] == verdict and words in tls["detail"] and "renew" in tls["hint"], tls
    assert got == code


async def test_a_jwt_login_and_its_expiry(tmp_path: Path) -> None:
    from softphone.switch.accounts import GENCRED1_USER, token_for

    async with Switch(port=0) as sw:
        for ttl, verdict in ((3600, "ok"), (60, "warn")):
            jwt = token_for(GENCRED1_USER, sw.accounts, ttl)
            cfg = tmp_path / "config.toml"
            cfg.write_text(f'[profiles.default]\nserver = "{sw.url}"\ntoken = "{jwt}"\naudio_backend = "null"\n')
            cfg.chmod(0o600)
            code, out, err = await doctor(environment(tmp_path, cfg), "--json")
            r = rows(out)
            assert r["server login"]["verdict"] == "ok", (out, err)
            row = r["clock login token"]
            assert row["verdict"] == verdict and abs(row["data"]["expires_in_s"] - ttl) < 30, row
            assert jwt not in out + err and jwt.split(".")[1] not in out + err
            assert code == (0 if verdict == "ok" else 10)


async def _silent_listener() -> tuple[asyncio.Server, int, list[asyncio.StreamWriter]]:
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept and say nothing, never close

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1]), held


@pytest.mark.parametrize("scheme, row, words", [("ws", "server websocket", "no websocket upgrade in 1 s"),
                                                ("wss", "server tls", "no TLS handshake in 1 s")])
async def test_a_server_that_never_answers_is_a_timeout(tmp_path: Path, scheme: str, row: str, words: str) -> None:
    server, port, held = await _silent_listener()
    async with StunResponder(silent=True) as mute:
        try:
            cfg = write_config(tmp_path, f"{scheme}://127.0.0.1:{port}", ice=f'[{{ urls = "{mute.url}" }}]')
            code, out, _err = await doctor(environment(tmp_path, cfg), "--json", "--timeout", "1")
        finally:
            for w in held:
                w.close()
            server.close()
        assert mute.received >= 2  # sent, then retransmitted
    r = rows(out)
    assert r["server tcp"]["verdict"] == "ok"
    assert r[row]["verdict"] == "fail" and words in r[row]["detail"], r[row]
    assert r["server login"]["verdict"] == "skip"
    stun_row = r[f"ice {mute.url}"]
    assert stun_row["verdict"] == "fail" and "no answer" in stun_row["detail"], stun_row
    assert code == 11


async def test_nothing_listening_and_wrong_credentials(tmp_path: Path, stun_server: StunResponder) -> None:
    ice = f'[{{ urls = "{stun_server.turn_url}", username = "{TURN_USER}", credential = "not-the-secret-42" }}]'
    async with Switch(port=0) as sw:
        env = environment(tmp_path, write_config(tmp_path, sw.url, password="wrong-password-123", ice=ice))
        code, out, err = await doctor(env, "--json")
        turn = rows(out)[f"ice {stun_server.turn_url}"]
        assert turn["verdict"] == "fail" and "401" in turn["detail"] and "refused" in turn["hint"], turn
        assert "not-the-secret-42" not in out + err
        login = rows(out)["server login"]
        assert login["verdict"] == "fail" and login["detail"].startswith("46001 login failed"), login
        assert "credentials" in login["hint"] and code == 11
        assert "wrong-password-123" not in out + err
        dead = sw.port
    env = environment(tmp_path, write_config(tmp_path, f"ws://127.0.0.1:{dead}"))
    code, out, err = await doctor(env, "--json")
    tcp = rows(out)["server tcp"]
    assert tcp["verdict"] == "fail" and "refused" in tcp["detail"].lower() and code == 11, tcp


@pytest.mark.audio
@pytest.mark.audio_devices
async def test_the_profiles_devices_are_opened_with_their_level(tmp_path: Path, virtual_audio: dict[str, str],
                                                                tone_wav: Any) -> None:
    """The virtual microphone (vmic) hears a tone played into micfeed: a level; silent, a warning."""
    cfg = tmp_path / "config.toml"
    cfg.write_text('default_profile = "a"\n[profiles.a]\nserver = "ws://127.0.0.1:9"\nusername = "u"\n'
                   'password = "p-123456"\ninput_device = "vmic"\noutput_device = "vspeaker"\n')
    cfg.chmod(0o600)
    env = environment(tmp_path, cfg)
    _, out, _ = await doctor(env, "--json", "--timeout", "1")
    r = rows(out)
    assert r["audio sound server"]["verdict"] == "ok" and r["audio portaudio devices"]["verdict"] == "ok", out
    assert r["audio output device"]["verdict"] == "ok" and "vspeaker" in r["audio output device"]["detail"]
    silent = r["audio input device"]
    assert silent["verdict"] == "warn" and "digital silence" in silent["detail"], silent
    wav = tone_wav(1000.0, seconds=20.0)
    player = await asyncio.create_subprocess_exec("paplay", "--device=micfeed", str(wav))
    try:
        await asyncio.sleep(0.3)
        code, out, _err = await doctor(env, "--json", "--timeout", "1")
    finally:
        player.terminate()
        await player.wait()
    heard = rows(out)["audio input device"]
    assert heard["verdict"] == "ok" and "vmic" in heard["detail"], heard
    assert heard["data"]["rms_dbfs"] is not None and heard["data"]["rms_dbfs"] > -40, heard
    assert code == 11  # nothing listens on port 9: the server rows fail
