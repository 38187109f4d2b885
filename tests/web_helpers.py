"""A real vidmatte web server for tests: uvicorn in a thread, bound to 127.0.0.1 on a free port, with bounded waits."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web page needs the extra vidmatte[web]")
uvicorn = pytest.importorskip("uvicorn", reason="the web page needs the extra vidmatte[web]")

from vidmatte.web.app import Settings, create_app  # noqa: E402


@contextlib.contextmanager
def serving(work: Path, **settings):
    """Yields (base address, app); the server stops (running jobs cancelled) when the block ends."""
    app = create_app(Settings(work=work, **settings))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", limit_concurrency=32, timeout_keep_alive=2))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):  # at most 10 s
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "the test server did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", app
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def call(base: str, method: str, path: str, body=None, headers: dict | None = None, timeout: float = 60):
    """(status, parsed JSON or raw bytes) of one request; a server that hangs up early reads as status None."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
    except (BrokenPipeError, ConnectionResetError):
        return None, None
    finally:
        conn.close()
    if response.getheader("content-type", "").startswith("application/json"):
        return response.status, json.loads(data)
    return response.status, data


def upload(base: str, path: Path, name: str | None = None, headers: dict | None = None):
    return call(base, "POST", "/api/jobs", path.read_bytes(), {"X-Filename": name or path.name, **(headers or {})})


def wait_for(base: str, job_id: str, states: tuple[str, ...], seconds: float = 120, headers=None) -> dict:
    """Poll a job until it reaches one of ``states`` (bounded: at most ``seconds``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, job = call(base, "GET", f"/api/jobs/{job_id}", headers=headers)
        assert status == 200, job
        if job["state"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach {states} in {seconds} s (last: {job['state']})")
