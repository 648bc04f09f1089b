"""HTTP reads have one budget per file: tries that progress does not refill, a total deadline and a minimum
rate. Served from 127.0.0.1 by a server whose handlers stop by themselves (a few seconds at most)."""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path

import pytest
from shards_fixtures import build

import shards.httpio
from shards import ShardsError
from shards.cli import main
from shards.httpio import open_http

BODY = bytes(range(256)) * 400  # 100 KB


class Server:
    """Serves BODY at /MODE, and files of `folder` under /ds/ (those named in `modes` misbehave):
    `half-reset` sends half of what is asked, then drops the connection; `half-stall` sends half, then
    goes silent (3 s at most); `trickle` sends 1 byte per 50 ms (3 s at most)."""

    def __init__(self, folder: Path | None = None, modes: dict[str, str] | None = None):
        self.folder, self.modes, self.requests = folder, modes or {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def handle(self, req) -> None:
        self.requests.append(req.path)
        if req.path.startswith("/ds/"):
            file = self.folder / req.path[len("/ds/") :]
            if not file.is_file():
                return req.send_error(404)
            return self.send(req, file.read_bytes(), self.modes.get(req.path[len("/ds/") :], "ok"))
        self.send(req, BODY, req.path.strip("/"))

    @staticmethod
    def send(req, data: bytes, mode: str) -> None:
        start = int(req.headers["Range"].split("=")[1].rstrip("-")) if req.headers.get("Range") else 0
        body = data[start:]
        req.send_response(206 if start else 200)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        try:
            if mode == "ok":
                req.wfile.write(body)
            elif mode.startswith("half-"):
                req.wfile.write(body[: len(body) // 2])
                req.wfile.flush()
                if mode == "half-stall":
                    time.sleep(3)
            elif mode == "trickle":
                for i in range(60):
                    req.wfile.write(body[i : i + 1])
                    req.wfile.flush()
                    time.sleep(0.05)
        except OSError:  # the client gave up on us
            pass
        req.close_connection = True

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fast(monkeypatch):
    """Seconds instead of minutes: a 0.2 s silence or a 0.3 s window under 1,000 bytes/s drops a connection."""
    monkeypatch.setattr(shards.httpio, "BACKOFF_S", 0.01)
    monkeypatch.setattr(shards.httpio, "TIMEOUT_S", 0.2)
    monkeypatch.setattr(shards.httpio, "RATE_WINDOW_S", 0.3)
    monkeypatch.setenv("DEEPBOOT_HTTP_MIN_RATE", "1000")
    monkeypatch.setenv("DEEPBOOT_HTTP_DEADLINE_S", "5")


@pytest.fixture
def server():
    server = Server()
    yield server
    server.stop()


def _read(url: str) -> tuple[bytes | ShardsError, float]:
    began = time.monotonic()
    try:
        with open_http(url) as f:
            return f.read(), time.monotonic() - began
    except ShardsError as exc:
        return exc, time.monotonic() - began


def test_a_healthy_server_is_read_whole(fast, server):
    data, _ = _read(f"{server.url}/ok")
    assert data == BODY


def test_a_slow_reader_of_a_fast_server_is_not_timed(fast, server, monkeypatch):
    """The budget counts time waiting on the network, not the reader's work between reads."""
    monkeypatch.setenv("DEEPBOOT_HTTP_DEADLINE_S", "0.5")
    began, pieces = time.monotonic(), []
    with open_http(f"{server.url}/ok", buffer_size=4096) as f:
        while piece := f.read(4096):
            pieces.append(piece)
            time.sleep(0.03)  # 25 pieces: 0.75 s of the reader's own work, past the 0.5 s deadline
    assert b"".join(pieces) == BODY and time.monotonic() - began > 0.5 and len(server.requests) == 1


def test_progress_does_not_refill_the_tries(fast, server):
    """Half of each response, then a dropped connection: every try makes progress, the budget still ends."""
    error, took = _read(f"{server.url}/half-reset")
    assert isinstance(error, ShardsError) and len(server.requests) == shards.httpio.ATTEMPTS
    assert str(error).startswith(f"{server.url}/half-reset: connection broke (")
    assert str(error).endswith("(5 tries); check the URL and the network, then re-run")
    assert took < 3


def test_a_server_that_stalls_after_half_of_each_response_fails_in_its_tries(fast, server):
    error, took = _read(f"{server.url}/half-stall")
    assert isinstance(error, ShardsError) and "connection broke (timed out) at byte " in str(error)
    assert "(5 tries)" in str(error) and len(server.requests) == 5
    assert took < 5 * 0.2 + 2  # five silent 0.2 s waits and the backoffs (was: 60 s per read, budget refilled)


def test_a_server_sending_one_byte_at_a_time_fails_by_its_minimum_rate(fast, server):
    error, took = _read(f"{server.url}/trickle")
    assert isinstance(error, ShardsError) and "connection too slow: " in str(error)
    assert "under the minimum 1,000 (DEEPBOOT_HTTP_MIN_RATE)" in str(error) and "(5 tries)" in str(error)
    assert took < 5 * 0.3 + 2


def test_the_deadline_bounds_a_file_whatever_its_tries(fast, server, monkeypatch):
    monkeypatch.setattr(shards.httpio, "ATTEMPTS", 1000)
    monkeypatch.setenv("DEEPBOOT_HTTP_DEADLINE_S", "1")
    error, took = _read(f"{server.url}/trickle")
    assert isinstance(error, ShardsError) and took < 1.5  # it gives up early when a backoff would overrun
    assert str(error).startswith(f"{server.url}/trickle: not read within its deadline of 1 s (")
    assert "raise DEEPBOOT_HTTP_DEADLINE_S for a slow link" in str(error)


@pytest.mark.parametrize("value", ["abc", "0", "-5", "inf"])
def test_bad_limit_settings_are_one_line(server, monkeypatch, value):
    monkeypatch.setenv("DEEPBOOT_HTTP_MIN_RATE", value)
    with pytest.raises(
        ShardsError,
        match=rf"DEEPBOOT_HTTP_MIN_RATE='{value}': must be a positive number \(default "
        r"10,000\); fix or unset it",
    ):
        open_http(f"{server.url}/ok")


def test_fetch_from_a_stalling_server_is_one_line_and_exit_2(fast, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    dataset = build(tmp_path / "ds", train=100, test=100)
    server = Server(dataset, {"data/test-000000.tar": "half-stall"})
    try:
        began = time.monotonic()
        code = main(["fetch", f"{server.url}/ds"])
        took = time.monotonic() - began
    finally:
        server.stop()
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err and took < 4
    assert err.splitlines()[-1].startswith(
        f"error: {server.url}/ds/data/test-000000.tar: connection broke (timed out) at byte "
    )
