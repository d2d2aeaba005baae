"""The server checks of ``softphone doctor``: DNS, TCP, TLS and its certificate, the websocket upgrade,
a real login through :class:`softphone.client.client.Client`, and the gateway state.

Each step is timed; a failed step skips the ones that need it. The websocket answer's ``Date``
header goes into :class:`~softphone.diag.probes.ServerFacts` for the clock check.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from softphone.config import Profile, resolve_ws_url
from softphone.diag.probes import Check, ServerFacts, Verdict, elapsed_ms, error_text
from softphone.errors import ConfigError, LoginFailed, SoftphoneError
from softphone.log import redact

__all__ = ["server_checks"]


def _cert_facts(der: bytes, host: str) -> dict[str, Any]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(der)

    def cn(name: x509.Name) -> str:
        attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else name.rfc4514_string()

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)] + [
            str(a) for a in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    expires = cert.not_valid_after_utc
    return {"subject": cn(cert.subject), "issuer": cn(cert.issuer), "self_signed": cert.subject == cert.issuer,
            "not_after": expires.isoformat(), "days_left": round((expires - dt.datetime.now(dt.UTC)).days),
            "names": names, "host": host}


_TRUST_HINT = ("trust its CA with SSL_CERT_FILE=/path/ca.pem (the standard OpenSSL variable; softphone uses the "
               "system store), or for a test server only set insecure = true in the profile")


async def _tls_check(addr: str, port: int, host: str, profile: Profile, timeout: float) -> tuple[Check, bool]:
    """The TLS handshake as the client does it, then the certificate; (row, the client would connect)."""
    verify = ssl.create_default_context()
    t0 = time.perf_counter()
    error: ssl.SSLCertVerificationError | None = None
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(addr, port, ssl=verify, server_hostname=host),
                                           timeout)
    except ssl.SSLCertVerificationError as exc:
        error = exc
    except TimeoutError:
        return Check("server", "tls", Verdict.FAIL, f"TCP connects but no TLS handshake in {timeout:g} s",
                     "the server accepts connections and says nothing: wrong port, a ws:// server, or a proxy that "
                     "holds the connection"), False
    except (OSError, ssl.SSLError) as exc:
        return Check("server", "tls", Verdict.FAIL, f"TLS handshake failed: {error_text(exc)}",
                     "is it a wss:// server? (ws:// has no TLS)"), False
    if error is None:
        handshake = elapsed_ms(t0)
        obj = writer.get_extra_info("ssl_object")
        der = obj.getpeercert(binary_form=True) if obj is not None else None
        version, cipher = (obj.version(), obj.cipher()[0]) if obj is not None else ("?", "?")
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    else:
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(addr, port, ssl=insecure, server_hostname=host), timeout)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            return Check("server", "tls", Verdict.FAIL, f"certificate refused ({error.verify_message}); "
                         f"then: {error_text(exc)}", _TRUST_HINT), False
        handshake = elapsed_ms(t0)
        obj = writer.get_extra_info("ssl_object")
        der = obj.getpeercert(binary_form=True) if obj is not None else None
        version, cipher = (obj.version(), obj.cipher()[0]) if obj is not None else ("?", "?")
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    facts: dict[str, Any] = _cert_facts(der, host) if der else {"host": host}
    facts.update(tls_version=version, cipher=cipher, verified=error is None, insecure=profile.insecure)
    who = f"subject {facts.get('subject', '?')}, issuer {facts.get('issuer', '?')}, expires " \
          f"{str(facts.get('not_after', '?'))[:10]} ({facts.get('days_left', '?')} days)"
    head = f"{version}, {who}"
    if error is not None:
        facts["verify_error"] = error.verify_message
        code = error.verify_code
        if code in (62, 64) or "hostname" in str(error.verify_message).lower() or "IP address mismatch" in str(error):
            names = ", ".join(facts.get("names") or []) or facts.get("subject", "?")
            verdict = Verdict.WARN if profile.insecure else Verdict.FAIL
            return Check("server", "tls", verdict, f"{head}: the certificate is for {names}, not {host}",
                         f"connect with a name the certificate covers ({names}), or get a certificate that lists "
                         f"{host}" + (" (insecure = true skips this check)" if profile.insecure else ""),
                         handshake, facts), profile.insecure
        if code == 10:
            return Check("server", "tls", Verdict.WARN if profile.insecure else Verdict.FAIL,
                         f"{head}: the certificate has expired", "renew the server's certificate; check the local "
                         "clock too (clock row)", handshake, facts), profile.insecure
        if code in (18, 19) or facts.get("self_signed"):
            state = "not verified (insecure = true)" if profile.insecure else "not trusted here"
            return Check("server", "tls", Verdict.WARN, f"{head}: self-signed, {state}",
                         _TRUST_HINT if not profile.insecure else
                         "insecure = true accepts any certificate; " + _TRUST_HINT.split(", or")[0] + " instead",
                         handshake, facts), profile.insecure
        return Check("server", "tls", Verdict.WARN if profile.insecure else Verdict.FAIL,
                     f"{head}: not trusted ({error.verify_message})", _TRUST_HINT, handshake, facts), profile.insecure
    days = facts.get("days_left")
    if isinstance(days, int) and days < 14:
        return Check("server", "tls", Verdict.WARN, f"{head}: expires soon", "renew the server's certificate",
                     handshake, facts), True
    note = " (self-signed, trusted here)" if facts.get("self_signed") else ""
    return Check("server", "tls", Verdict.OK, f"{head}{note}, {cipher}", "", handshake, facts), True


async def _websocket(url: str, profile: Profile, timeout: float, facts: ServerFacts) -> Check:
    from websockets.asyncio.client import connect

    ctx: ssl.SSLContext | None = None
    if url.startswith("wss:"):
        ctx = ssl.create_default_context()
        if profile.insecure:
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    t0 = time.perf_counter()
    try:
        ws = await connect(url, ssl=ctx, open_timeout=timeout, compression=None, ping_interval=None)
    except TimeoutError:
        return Check("server", "websocket", Verdict.FAIL, f"no websocket upgrade in {timeout:g} s",
                     "the server accepts the connection but does not answer the HTTP upgrade")
    except Exception as exc:  # websockets' InvalidStatus / InvalidHandshake / OSError / SSL errors
        return Check("server", "websocket", Verdict.FAIL, f"upgrade failed: {redact(error_text(exc))}",
                     "check the server URL (wss://host[:port][/path])")
    took = elapsed_ms(t0)
    facts.local_at_date = time.time() - took / 2000.0
    facts.rtt_s = took / 1000.0
    response = ws.response
    headers = response.headers if response is not None else {}
    facts.date = str(headers.get("Date", ""))
    server = str(headers.get("Server", ""))
    with contextlib.suppress(Exception):
        await ws.close()
    return Check("server", "websocket", Verdict.OK, f"101 Switching Protocols in {took:.0f} ms"
                 + (f" ({server})" if server else ""), "", took, {"server_header": server, "date": facts.date})


async def _login(profile: Profile, timeout: float) -> list[Check]:
    from softphone.client import events as ce
    from softphone.client.client import Client
    from softphone.media.hub import AudioConfig
    from softphone.protocol.states import GatewayState

    try:
        profile.require_credentials()
    except ConfigError as exc:
        reason = str(exc).splitlines()[0]
        return [Check("server", "login", Verdict.SKIP, f"{reason}", "set credentials to test the login"),
                Check("server", "gateway", Verdict.SKIP, "no login")]
    seen: dict[str, float] = {}
    client = Client.from_profile(profile, reconnect=False, audio=AudioConfig(backend="null"),
                                 connect_timeout=timeout)

    def note(event: ce.Event) -> None:
        if isinstance(event, ce.SocketOpen | ce.LoggedIn | ce.Ready):
            seen.setdefault(event.name, event.ts)

    client.subscribe(note)
    t0 = time.perf_counter()
    try:
        await asyncio.wait_for(client.connect(), timeout + 5)
    except LoginFailed as exc:
        return [Check("server", "login", Verdict.FAIL, f"46001 login failed: {redact(str(exc))}",
                      f"the server refused the credentials of profile {profile.name!r}: check username/password or "
                      "token (`softphone config show`)", elapsed_ms(t0), {"code": 46001, "rpc_code": exc.code}),
                Check("server", "gateway", Verdict.SKIP, "no login")]
    except (TimeoutError, SoftphoneError, OSError) as exc:
        what = f"no login answer in {timeout + 5:g} s" if isinstance(exc, TimeoutError) else redact(error_text(exc))
        return [Check("server", "login", Verdict.FAIL, what, "see the websocket row", elapsed_ms(t0)),
                Check("server", "gateway", Verdict.SKIP, "no login")]
    finally:
        gateway, dc, region = client.gateway_state, client.dc, client.region
        with contextlib.suppress(Exception):
            await client.close()
    total = elapsed_ms(t0)
    opened, logged = seen.get("socket.open"), seen.get("client.logged_in")
    rtt = (logged - opened) * 1000 if opened is not None and logged is not None else None
    rows = [Check("server", "login", Verdict.OK,
                  f"logged in as {profile.username or 'the token credential'}: login round trip "
                  + (f"{rtt:.1f} ms" if rtt is not None else "?") + f", ready after {total:.0f} ms", "",
                  rtt, {"login_rtt_ms": None if rtt is None else round(rtt, 1), "ready_ms": round(total, 1)})]
    where = ", ".join(x for x in (f"dc {dc}" if dc else "", f"region {region}" if region else "") if x)
    state = gateway.value if gateway is not None else ""
    if gateway == GatewayState.REGED or (not state and "client.ready" in seen):
        rows.append(Check("server", "gateway", Verdict.OK, f"{state or 'ready'}" + (f" ({where})" if where else ""),
                          "", None, {"state": state, "dc": dc, "region": region}))
    else:
        rows.append(Check("server", "gateway", Verdict.WARN, f"gateway state {state or 'not reported'}",
                          "calls may fail until the gateway registers (REGED); Telnyx retries for you",
                          None, {"state": state, "dc": dc, "region": region}))
    return rows


async def server_checks(profile: Profile, timeout: float, facts: ServerFacts, *, login: bool = True) -> list[Check]:
    """DNS, TCP, TLS (wss://), websocket upgrade, login and gateway, in order; a failed step skips the rest."""
    url = resolve_ws_url(profile)
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "wss"
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError:
        return [Check("server", "dns", Verdict.FAIL, f"bad port in {url}", "fix server in the profile")]
    rows: list[Check] = []
    names = ("tcp", "tls", "websocket", "login", "gateway") if secure else ("tcp", "websocket", "login", "gateway")

    def skip_rest(after: str, why: str) -> list[Check]:
        rest = names[names.index(after) + 1:] if after in names else names
        if not secure and "tls" not in rest:
            rows.append(Check("server", "tls", Verdict.SKIP, "ws:// has no TLS"))
        return [*rows, *(Check("server", n, Verdict.SKIP, why) for n in rest)]

    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    try:
        ipaddr = host.strip("[]")
        socket.inet_pton(socket.AF_INET6 if ":" in ipaddr else socket.AF_INET, ipaddr)
        addrs = [ipaddr]
        rows.append(Check("server", "dns", Verdict.OK, f"{host} is an address (no lookup)", "", None,
                          {"host": host, "addresses": addrs}))
    except OSError:
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
        except (OSError, TimeoutError) as exc:
            what = f"no DNS answer in {timeout:g} s" if isinstance(exc, TimeoutError) else error_text(exc)
            rows.append(Check("server", "dns", Verdict.FAIL, f"cannot resolve {host}: {what}",
                              "check the server name in the profile, the network and /etc/resolv.conf", elapsed_ms(t0)))
            return skip_rest("dns", "DNS failed")
        addrs = list(dict.fromkeys(str(i[4][0]) for i in infos))
        rows.append(Check("server", "dns", Verdict.OK, f"{host} -> {', '.join(addrs[:4])}"
                          + (f" (+{len(addrs) - 4})" if len(addrs) > 4 else ""), "", elapsed_ms(t0),
                          {"host": host, "addresses": addrs}))
    addr = addrs[0]
    t0 = time.perf_counter()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(addr, port), timeout)
    except TimeoutError:
        rows.append(Check("server", "tcp", Verdict.FAIL, f"no TCP answer from {addr}:{port} in {timeout:g} s",
                          "a firewall drops the packets, or the host is down", elapsed_ms(t0)))
        return skip_rest("tcp", "TCP failed")
    except OSError as exc:
        rows.append(Check("server", "tcp", Verdict.FAIL, f"{addr}:{port}: {error_text(exc)}",
                          "nothing listens there: is the server running (softphone switch serve) and the port right?",
                          elapsed_ms(t0)))
        return skip_rest("tcp", "TCP failed")
    took = elapsed_ms(t0)
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    rows.append(Check("server", "tcp", Verdict.OK, f"connected to {addr}:{port} in {took:.1f} ms", "", took,
                      {"address": addr, "port": port}))
    if secure:
        tls, usable = await _tls_check(addr, port, host, profile, timeout)
        rows.append(tls)
        if tls.verdict == Verdict.FAIL and not usable and "handshake" in tls.detail:
            return skip_rest("tls", "TLS failed")
    else:
        rows.append(Check("server", "tls", Verdict.SKIP, "ws:// has no TLS"
                          + ("" if host in ("127.0.0.1", "localhost", "::1") else " (unencrypted: insecure = true)")))
    ws = await _websocket(url, profile, timeout, facts)
    rows.append(ws)
    if ws.verdict == Verdict.FAIL:
        return skip_rest("websocket", "the websocket did not open")
    if not login:
        return [*rows, Check("server", "login", Verdict.SKIP, "--no-login"),
                Check("server", "gateway", Verdict.SKIP, "--no-login")]
    return [*rows, *(await _login(profile, timeout))]


