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
