"""Quarry driven by real clients: the official MCP Python SDK (Streamable HTTP at /mcp and
`quarry mcp` on stdio), an OpenAPI validator, and Prometheus' own text parser, against
`quarry serve` on a fresh demo workspace with the real model.

    QUARRY_BIN=<path to quarry> python -m pytest tests/clients      (make test runs it)
"""

import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/quarry/target"))
BIN = os.environ.get("QUARRY_BIN", str(TARGET / "release/quarry"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A running `quarry serve`, with an API key per role."""

    def __init__(self, base: str, env: dict, keys: dict):
        self.base = base
        self.env = env
        self.keys = keys

    def get(self, path: str, key: str | None = None) -> tuple[int, str, str]:
        request = urllib.request.Request(self.base + path)
        if key:
            request.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.headers.get("content-type", ""), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("content-type", ""), error.read().decode()


@pytest.fixture(scope="session")
def server():
    workspace = tempfile.mkdtemp(prefix="quarry-clients-")
    port = _free_port()
    env = {**os.environ, "QUARRY_WORKSPACE": workspace, "QUARRY_PORT": str(port)}
    keys = {}
    # Keys are made before the server starts; serve creates the demo warehouse and index.
    for role in ["analyst", "admin"]:
        created = subprocess.run(
            [BIN, "keys", "create", "--name", f"clients-{role}", "--role", role],
            cwd=REPO, env=env, capture_output=True, text=True, check=True,
        ).stdout
        match = re.search(r"qk_[0-9a-f]+", created)
        assert match, f"no key in: {created}"
        keys[role] = match.group(0)
    process = subprocess.Popen([BIN, "serve"], cwd=REPO, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, f"quarry serve exited with {process.returncode}"
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "quarry serve did not answer /healthz within 300 s"
                time.sleep(0.5)
        yield Server(base, env, keys)
    finally:
        process.terminate()
        process.wait(timeout=30)
