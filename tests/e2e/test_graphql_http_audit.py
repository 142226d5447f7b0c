"""The GraphQL-over-HTTP audit suite (npm `graphql-http`, pinned) against a real `tierup serve`:
no error and no warning. The package is installed once into tests/.node-cache (git-ignored, kept
between runs); without node, or when npm cannot install it (offline), the test is skipped and
tests/api/test_graphql_over_http.py still checks the behaviour the audit looks at."""

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from servers import start_server, stop, wait_ready
from wsclient import free_port

PACKAGES = ("graphql-http@1.23.1", "graphql@16.15.0")
NODE_CACHE = Path(os.environ.get("TIERUP_TEST_NODE_CACHE", Path(__file__).parents[1] / ".node-cache"))

# Runs every audit of the suite and prints the count of errors and warnings, with what failed.
AUDIT = """
import { serverAudits } from 'graphql-http';
const results = await Promise.all(serverAudits({ url: process.argv[2], fetchFn: fetch }).map((audit) => audit.fn()));
const failed = results.filter((result) => result.status !== 'ok');
console.log(JSON.stringify({
  audits: results.length,
  errors: failed.filter((result) => result.status === 'error').length,
  warnings: failed.filter((result) => result.status === 'warn').length,
  failed: failed.map((result) => `${result.status} ${result.id} ${result.name}: ${result.reason}`),
}));
"""


@pytest.fixture(scope="session")
def audit_suite() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run the graphql-http audit")
    directory = NODE_CACHE / "graphql-http-audit"
    if not (directory / "node_modules" / "graphql-http" / "package.json").exists():
        directory.mkdir(parents=True, exist_ok=True)
        installed = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix",
                                    str(directory), *PACKAGES], capture_output=True, text=True, timeout=300)
        if installed.returncode != 0:
            pytest.skip(f"npm could not install {' '.join(PACKAGES)}: {installed.stderr.strip()[-500:]}")
    script = directory / "audit.mjs"  # beside node_modules, so the import resolves there
    script.write_text(AUDIT)
    return script


async def test_the_graphql_over_http_audit_finds_nothing_to_fix(audit_suite, tmp_path):
    port = free_port()
    server = start_server(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}", port, tmp_path)
    try:
        await wait_ready(port, server, tmp_path)
        audit = await asyncio.to_thread(subprocess.run, ["node", str(audit_suite), f"http://127.0.0.1:{port}/graphql"],
                                        capture_output=True, text=True, timeout=120)
    finally:
        stop([server])
    assert audit.returncode == 0, audit.stderr
    report = json.loads(audit.stdout)
    assert report["audits"] > 50
    assert (report["errors"], report["warnings"]) == (0, 0), "\n".join(report["failed"])
