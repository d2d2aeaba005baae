"""The commands API's route registry: routes added from other modules, raw (non-JSON) responses,
query strings and form bodies reach the handler; built-in routes keep working beside them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from ccfixtures import API_KEY, catcher, cc  # noqa: F401

from softphone.switch.callcontrol import routes as ccroutes
from softphone.switch.callcontrol.engine import CallControl, CommandError
from softphone.switch.callcontrol.routes import ApiContext, RawResponse, current_request, register_route


@pytest.fixture
def routes() -> Any:
    saved = list(ccroutes.ROUTES)
    yield
    ccroutes.ROUTES[:] = saved


async def test_registered_routes_raw_json_and_errors(cc: CallControl, routes: Any) -> None:  # noqa: F811
    seen: list[Any] = []

    async def token(api: ApiContext, params: dict[str, str], body: dict[str, Any], tok: str) -> Any:
        api.authorize("app", tok)
        req = current_request()
        seen.append((params, body, req.query, req.method, req.headers.get("content-type")))
        return RawResponse.text(f"jwt-for-{params['id']}")

    async def listing(api: ApiContext, params: dict[str, str], body: dict[str, Any], tok: str) -> Any:
        return RawResponse.json({"data": [1, 2], "meta": {"total_results": 2}})

    async def item(api: ApiContext, params: dict[str, str], body: dict[str, Any], tok: str) -> Any:
        if params["id"] == "missing":
            raise CommandError(404, "10005", "Resource not found", "no such thing")
        return {"id": params["id"]}

    register_route("POST", "/v2/things/{id}/token", token)
    register_route("get", "/v2/things", listing)
    register_route("GET", "/v2/things/{id}", item)
    base = cc.api_url
    auth = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post("/v2/things/a%20b/token?x=1&y=two", data={"k": "v"}, headers=auth)
        assert (r.status_code, r.headers["content-type"], r.text) == (200, "text/plain; charset=utf-8", "jwt-for-a b")
        form = "application/x-www-form-urlencoded"
        assert seen == [({"id": "a b"}, {"k": "v"}, {"x": "1", "y": "two"}, "POST", form)]
        r = await http.post("/v2/things/x/token", json={}, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.json()["errors"][0]["code"] == "10009"
        r = await http.get("/v2/things")
        assert r.json() == {"data": [1, 2], "meta": {"total_results": 2}}
        r = await http.get("/v2/things/abc")
        assert r.json() == {"data": {"id": "abc"}}
        r = await http.get("/v2/things/missing")
        assert r.status_code == 404 and r.json()["errors"][0]["detail"] == "no such thing"
        r = await http.delete("/v2/things/abc")  # no DELETE route: falls through to the built-ins' 404
        assert r.status_code == 404
        r = await http.get("/v2/conferences", headers=auth)  # a built-in route still answers
        meta = {"page_number": 1, "page_size": 20, "total_pages": 1, "total_results": 0}
        assert r.status_code == 200 and r.json() == {"data": [], "meta": meta}


def test_page_meta() -> None:
    items = list(range(45))
    body = json.loads(ccroutes.page(items, {"page[number]": "3", "page[size]": "20"}).body)
    assert body == {"data": list(range(40, 45)), "meta": {"page_number": 3, "page_size": 20, "total_pages": 3,
                                                         "total_results": 45}}
    body = json.loads(ccroutes.page(items, {"page[number]": "x", "page[size]": "1000"}).body)
    assert body["data"] == items and body["meta"]["page_size"] == 250


async def test_registering_again_replaces(routes: Any) -> None:
    async def one(api: ApiContext, params: dict[str, str], body: dict[str, Any], tok: str) -> Any:
        return 1

    async def two(api: ApiContext, params: dict[str, str], body: dict[str, Any], tok: str) -> Any:
        return 2

    n = len(ccroutes.ROUTES)
    register_route("GET", "/v2/x/{id}", one)
    register_route("GET", "v2/x/{id}/", two)
    assert len(ccroutes.ROUTES) == n + 1
    assert ccroutes.ROUTES[-1].handler is two


async def test_keep_alive_serves_requests_in_turn_and_closes_when_asked(cc: CallControl) -> None:  # noqa: F811
    import asyncio
    from urllib.parse import urlsplit

    u = urlsplit(cc.api_url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)

    async def exchange(head: str) -> tuple[str, dict[str, Any]]:
        writer.write(head.encode())
        await writer.drain()
        status = (await reader.readline()).decode()
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        body = json.loads(await reader.readexactly(int(headers["content-length"])))
        return status + headers["connection"], body

    auth = f"Authorization: Bearer {API_KEY}\r\n"
    first, body = await exchange(f"GET /v2/conferences HTTP/1.1\r\nHost: x\r\n{auth}\r\n")
    assert first.startswith("HTTP/1.1 200") and first.endswith("keep-alive") and body["data"] == []
    second, body = await exchange(f"GET /v2/calls/v3:nope HTTP/1.1\r\nHost: x\r\n{auth}\r\n")  # an error keeps it
    assert second.startswith("HTTP/1.1 404") and second.endswith("keep-alive")
    third, body = await exchange(f"GET /v2/conferences HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n")
    assert third.endswith("close") and await reader.read() == b""  # closed as asked
    writer.close()

    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    old, _ = await exchange(f"GET /v2/conferences HTTP/1.0\r\n{auth}\r\n")
    assert old.endswith("close") and await reader.read() == b""
    writer.close()

    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    bad, _ = await exchange("GET /v2/conferences HTTP/1.1\r\nContent-Length: x\r\n\r\n")  # a bad request closes
    assert bad.startswith("HTTP/1.1 400") and bad.endswith("close") and await reader.read() == b""
    writer.close()

    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    ok, _ = await exchange(f"GET /v2/conferences HTTP/1.1\r\n{auth}\r\n")
    assert ok.endswith("keep-alive")
    api = cc._api
    assert api is not None
    await api.stop()  # an idle kept-alive connection ends with the server
    assert await asyncio.wait_for(reader.read(), 2.0) == b""
    writer.close()


async def test_keep_alive_does_not_answer_leftover_body_bytes(cc: CallControl) -> None:  # noqa: F811
    import asyncio
    from urllib.parse import urlsplit

    u = urlsplit(cc.api_url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    # A body without Content-Length: the request ends at the blank line; "{}" is no request of its own.
    writer.write(f"GET /v2/conferences HTTP/1.1\r\nAuthorization: Bearer {API_KEY}\r\n\r\n{{}}".encode())
    writer.write_eof()
    raw = await asyncio.wait_for(reader.read(), 5.0)
    assert raw.count(b"HTTP/1.1 ") == 1 and raw.startswith(b"HTTP/1.1 200")
    writer.close()
    # Two requests sent at once (pipelined) get two answers, in order.
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    one = f"GET /v2/conferences HTTP/1.1\r\nAuthorization: Bearer {API_KEY}\r\n\r\n"
    writer.write((one + "\r\n" + one.replace("conferences", "calls/v3:nope")).encode())
    writer.write_eof()
    raw = await asyncio.wait_for(reader.read(), 5.0)
    assert raw.startswith(b"HTTP/1.1 200") and raw.count(b"HTTP/1.1 404") == 1
    writer.close()
