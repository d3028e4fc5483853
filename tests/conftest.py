"""Shared fixtures: paths to the repository and to ../shared/data (real data, optional)."""
from __future__ import annotations

import http.server
import os
import tempfile
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# image-verification cache (come.data.verify) of this test session, not the user's ~/.cache
os.environ.setdefault("COME_CACHE_DIR", tempfile.mkdtemp(prefix="come-test-cache-"))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available: {SHARED_DATA} is absent (it sits beside the repo "
                    "on developer machines and in CI only)")
    return SHARED_DATA


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `files` (path -> bytes) with Range support; records the Range headers asked for."""
    files: dict[str, bytes] = {}
    ranges: list[str] = []
    etags: dict[str, str] = {}
    cut: dict[str, int] = {}             # path -> bytes sent before the connection drops (once)

    def do_GET(self):  # noqa: N802 (http.server API)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        if rng:
            self.ranges.append(rng)
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            chunk = body[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            chunk = body
            self.send_response(200)
        if self.path in self.etags:
            self.send_header("ETag", self.etags[self.path])
        self.send_header("Content-Length", str(len(chunk)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if self.path in self.cut:
            chunk = chunk[: self.cut.pop(self.path)]
            self.close_connection = True
        self.wfile.write(chunk)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A real HTTP server on 127.0.0.1 (ephemeral port): yields (base URL, handler class)."""
    _Handler.files, _Handler.ranges, _Handler.etags, _Handler.cut = {}, [], {}, {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)
