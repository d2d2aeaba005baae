"""The commands API's route registry: routes added from other modules, raw (non-JSON) responses,
query strings and form bodies reach the handler; built-in routes keep working beside them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from ccfixtures import API_KEY, catcher, cc  # noqa: F401

from softphone.switch.callcontrol import api as ccapi
from softphone.switch.callcontrol.api import ApiServer, RawResponse, current_request, register_route
from softphone.switch.callcontrol.engine import CallControl, CommandError


@pytest.fixture
def routes() -> Any:
    saved = list(ccapi._ROUTES)
    yield
    ccapi._ROUTES[:] = saved


async def test_registered_routes_raw_json_and_errors(cc: CallControl, routes: Any) -> None:  # noqa: F811
    seen: list[Any] = []

    async def token(api: ApiServer, params: dict[str, str], body: dict[str, Any], tok: str) -> Any:
        api.authorize("app", tok)
        req = current_request()
        seen.append((params, body, req.query, req.method, req.headers.get("content-type")))
        return RawResponse.text(f"jwt-for-{params['id']}")

    async def listing(api: ApiServer, params: dict[str, str], body: dict[str, Any], tok: str) -> Any:
        return RawResponse.json({"data": [1, 2], "meta": {"total_results": 2}})

    async def item(api: ApiServer, params: dict[str, str], body: dict[str, Any], tok: str) -> Any:
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
        assert r.status_code == 200 and r.json() == {"data": []}


async def test_registering_again_replaces(routes: Any) -> None:
    async def one(api: ApiServer, params: dict[str, str], body: dict[str, Any], tok: str) -> Any:
        return 1

    async def two(api: ApiServer, params: dict[str, str], body: dict[str, Any], tok: str) -> Any:
        return 2

    n = len(ccapi._ROUTES)
    register_route("GET", "/v2/x/{id}", one)
    register_route("GET", "v2/x/{id}/", two)
    assert len(ccapi._ROUTES) == n + 1
    assert ccapi._ROUTES[-1].handler is two
