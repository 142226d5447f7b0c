"""GraphiQL that works offline: its npm packages are fetched once, verified and served by tierup.

Strawberry's stock page loads React and GraphiQL from a public CDN and stays at "Loading…" on a
restricted network. Here the same page points at /graphiql/assets/…, whose files come from the
pinned npm tarballs below: downloaded from the registry (or TIERUP_NPM_REGISTRY) at setup
(`tierup assets fetch`) or on first start, checked against their integrity hashes and cached
(TIERUP_ASSET_CACHE_DIR). TIERUP_GRAPHIQL_CDN points the page at a mirror instead.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

log = logging.getLogger("tierup.graphiql")

ASSET_PREFIX = "/graphiql/assets"


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    integrity: str  # the registry's dist.integrity (SRI, sha512)
    files: tuple[str, ...]  # paths inside the package the page uses

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def tarball_url(self, registry: str) -> str:
        basename = self.name.rsplit("/", 1)[-1]
        return f"{registry}/{self.name}/-/{basename}-{self.version}.tgz"


PACKAGES = (
    NpmPackage("react", "18.2.0",
               "sha512-/3IjMdb2L9QbBdWiW5e3P2/npwMBaU9mHCSCUzNln0ZCYbcfTsGbTJrU/kGemdH2IWmB2ioZ+zkxtmq6g09fGQ==",
               ("umd/react.production.min.js",)),
    NpmPackage("react-dom", "18.2.0",
               "sha512-6IMTriUmvsjHUjNtEDudZfuDQUoWXVxKHhlEGSk81n4YFS+r/Kl99wXiwlVXtPBtJenozv2P+hxDsw9eA7Xo6g==",
               ("umd/react-dom.production.min.js",)),
    NpmPackage("js-cookie", "3.0.5",
               "sha512-cEiJEAEoIbWfCZYKWhVwFuvPX1gETRYPw6LlaTKoxD3s2AkXzkCjnp6h0V77ozyqj0jakteJ4YqDJT830+lVGw==",
               ("dist/js.cookie.min.js",)),
    NpmPackage("graphiql", "3.8.3",
               "sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==",
               ("graphiql.min.js", "graphiql.min.css")),
    NpmPackage("@graphiql/plugin-explorer", "1.0.2",
               "sha512-9j+kg2UjtLZD5EBmGjeWHkoVVxtbShYg2DzbUVebibnZYZM/iMBEF4vaccXJIAm5KaomIPLx0aoNs4LbODyc3Q==",
               ("dist/index.umd.js", "dist/style.css")),
)

CDN_URL = re.compile(r"https://unpkg\.com/((?:@[^/\"]+/)?[^@/\"]+)@([^/\"]+)/([^\"]+)")


class AssetError(RuntimeError):
    pass


class GraphiQLAssets:
    def __init__(self, cache_dir: str | os.PathLike, registry: str, mirror: str | None = None):
        self.cache_dir = Path(cache_dir)
        self.registry = registry.rstrip("/")
        self.mirror = mirror.rstrip("/") if mirror else None

    def page(self, stock_html: str) -> str:
        """Strawberry's GraphiQL page with every CDN URL pointing at tierup (or the configured mirror)."""
        base = self.mirror or ASSET_PREFIX
        return CDN_URL.sub(lambda m: f"{base}/{m.group(1)}@{m.group(2)}/{m.group(3)}", stock_html)

    def ready(self) -> bool:
        return all(self._marker(p).exists() for p in PACKAGES)

    def fetch_all(self, timeout: float = 60.0) -> None:
        """Download, verify and unpack every package not yet cached."""
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            for package in PACKAGES:
                if not self._marker(package).exists():
                    self._fetch(client, package)

    def path_of(self, asset: str) -> Path | None:
        """The cached file for 'name@version/path', or None when it is not one of ours."""
        for package in PACKAGES:
            prefix = package.key + "/"
            if asset.startswith(prefix) and asset[len(prefix):] in package.files:
                return self._dir(package) / asset[len(prefix):]
        return None

    def _dir(self, package: NpmPackage) -> Path:
        return self.cache_dir / package.key.replace("/", "__")

    def _marker(self, package: NpmPackage) -> Path:
        return self._dir(package) / ".verified"

    def _fetch(self, client: httpx.Client, package: NpmPackage) -> None:
        url = package.tarball_url(self.registry)
        log.info("fetching %s from %s", package.key, url)
        try:
            response = client.get(url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise AssetError(f"cannot download {package.key} from {url}: {exc}") from exc
        algorithm, _, expected = package.integrity.partition("-")
        actual = base64.b64encode(hashlib.new(algorithm, response.content).digest()).decode()
        if actual != expected:
            raise AssetError(f"{package.key} from {url} does not match its pinned integrity hash")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.cache_dir, prefix=".staging-"))
        try:
            with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
                for name in package.files:
                    member = archive.extractfile(f"package/{name}")
                    if member is None:
                        raise AssetError(f"{package.key} has no file {name}")
                    target = staging / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(member.read())
            (staging / ".verified").write_text(package.integrity)
            final = self._dir(package)
            if final.exists():
                shutil.rmtree(final)
            staging.rename(final)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
