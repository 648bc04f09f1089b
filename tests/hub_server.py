"""A fake Hugging Face Hub on 127.0.0.1 for tests: dataset files under `/datasets/<repo>/resolve/<rev>/<path>`.

    hub = FakeHub().start()
    hub.add("me/tiny", dataset_folder)          # revision "main"; add(..., revision="v1") for others
    hub.script("data/train-000001.tar", 500)     # the next request for it answers 500 (then it is served)
    hub.script("data/train-000002.tar", "reset")  # sends half the body, then drops the connection
    with hub.endpoint(monkeypatch): ...          # huggingface_hub.constants point at it, in this process

Serves `Range: bytes=N-` (206), records every request (path, Authorization, Range), answers 404 for
files it does not have and 401 for repos added with `token=` when the request lacks that token.
"""

from __future__ import annotations

import http.server
import threading
from pathlib import Path
from urllib.parse import unquote

import huggingface_hub.constants


class FakeHub:
    def __init__(self):
        self.repos: dict[tuple[str, str], tuple[Path, str | None]] = {}
        self.scripted: dict[str, list] = {}
        self.redirects: dict[str, str] = {}
        self.requests: list[dict] = []
        self.server = None

    def add(self, repo_id: str, folder: Path, revision: str = "main", token: str | None = None) -> None:
        self.repos[(repo_id, revision)] = (Path(folder), token)

    def script(self, path: str, *answers) -> None:
        """The next requests for `path` (in any repo) get these answers first: a status code or "reset"."""
        self.scripted.setdefault(path, []).extend(answers)

    def redirect(self, path: str, location: str) -> None:
        self.redirects[path] = location

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                hub.handle(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def endpoint(self, monkeypatch) -> None:
        """Point huggingface_hub at this server in this process (it reads HF_ENDPOINT only at import)."""
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", self.url)
        monkeypatch.setattr(
            huggingface_hub.constants,
            "HUGGINGFACE_CO_URL_TEMPLATE",
            self.url + "/{repo_id}/resolve/{revision}/{filename}",
        )

    def served(self, path: str) -> int:
        """How many requests asked for a file ending in `path`."""
        return sum(r["path"].endswith("/" + path) for r in self.requests)

    def handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        self.requests.append(
            {
                "path": req.path,
                "auth": req.headers.get("Authorization"),
                "range": req.headers.get("Range"),
                "host": req.headers.get("Host"),
            }
        )
        parts = req.path.split("/", 6)  # '', 'datasets', org, name, 'resolve', rev, path
        if len(parts) < 7 or parts[1] != "datasets" or parts[4] != "resolve":
            return req.send_error(404)
        repo = self.repos.get((f"{parts[2]}/{parts[3]}", unquote(parts[5])))
        path = unquote(parts[6])
        if path in self.redirects:
            req.send_response(302)
            req.send_header("Location", self.redirects.pop(path))
            req.send_header("Content-Length", "0")
            return req.end_headers()
        if repo is None:
            return req.send_error(404)
        folder, token = repo
        if token and req.headers.get("Authorization") != f"Bearer {token}":
            return req.send_error(401)
        answer = self.scripted[path].pop(0) if self.scripted.get(path) else None
        if isinstance(answer, int):
            return req.send_error(answer)
        file = folder / path
        if not file.is_file():
            return req.send_error(404)
        self._send(req, file.read_bytes(), answer == "reset")

    @staticmethod
    def _send(req, data: bytes, reset: bool) -> None:
        start = int(req.headers["Range"].split("=")[1].rstrip("-")) if req.headers.get("Range") else 0
        req.send_response(206 if start else 200)
        req.send_header("Content-Length", str(len(data) - start))
        req.end_headers()
        body = data[start:]
        req.wfile.write(body[: len(body) // 2] if reset else body)
        if reset:
            req.wfile.flush()
            req.close_connection = True
            req.connection.shutdown(2)
