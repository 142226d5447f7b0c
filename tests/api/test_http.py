"""The HTTP surface: health, readiness, and a GraphiQL page whose every asset tierup serves."""

import base64
import hashlib
import re

import pytest


async def test_health_and_readiness(api):
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"


async def test_readiness_fails_when_the_database_is_unreachable(settings, clock):
    import httpx

    from tierup.app import create_app
    from tierup.store.db import Database

    app = create_app(settings, db=Database("postgresql+asyncpg://nobody@127.0.0.1:1/none"), clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503


ASSET = re.compile(r'(?:src|href)="([^"]+)"')
TAG_INTEGRITY = re.compile(r'(?:src|href)="([^"]+)"\s+integrity="([^"]+)"')


@pytest.fixture(scope="session")
def fetched_assets():
    """The real npm tarballs, fetched and verified once per run (cached between runs)."""
    from helpers import ASSET_CACHE
    from tierup.graphiql import GraphiQLAssets

    assets = GraphiQLAssets(ASSET_CACHE, "https://registry.npmjs.org")
    assets.fetch_all()
    return assets


async def test_every_asset_on_the_graphiql_page_is_served_by_tierup(api, fetched_assets):
    page = await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    urls = [u for u in ASSET.findall(page.text) if not u.startswith("data:")]
    assert len(urls) == 7
    for url in urls:
        assert url.startswith("/graphiql/assets/"), url
    for url, integrity in TAG_INTEGRITY.findall(page.text):
        asset = await api.client.get(url)
        assert asset.status_code == 200, url
        # The browser checks these SRI hashes too: the bytes are exactly the published files.
        digest = base64.b64encode(hashlib.sha384(asset.content).digest()).decode()
        assert integrity == f"sha384-{digest}", url
    assert len(TAG_INTEGRITY.findall(page.text)) == 7
    assert "unpkg.com" not in page.text


async def test_a_mirror_setting_points_the_page_elsewhere(settings, db, clock, program):
    from dataclasses import replace

    import httpx

    from tierup.app import create_app

    app = create_app(replace(settings, graphiql_cdn="https://npm.mirror.example/"), db=db, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        page = await client.get("/graphql", headers={"Accept": "text/html"})
    urls = [u for u in ASSET.findall(page.text) if not u.startswith("data:")]
    assert urls and all(u.startswith("https://npm.mirror.example/") for u in urls)


def test_a_tarball_that_does_not_match_its_hash_is_refused(tmp_path):
    import httpx

    from tierup.graphiql import PACKAGES, AssetError, GraphiQLAssets

    def registry(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"not the real tarball")

    assets = GraphiQLAssets(tmp_path, "https://registry.example")
    with httpx.Client(transport=httpx.MockTransport(registry)) as client:
        with pytest.raises(AssetError, match="integrity"):
            assets._fetch(client, PACKAGES[0])
    assert not assets.ready()
    assert list(tmp_path.iterdir()) == []


async def test_unknown_asset_paths_are_not_served(api):
    assert (await api.client.get("/graphiql/assets/react@18.2.0/package.json")).status_code == 404
    assert (await api.client.get("/graphiql/assets/../../etc/passwd")).status_code == 404
