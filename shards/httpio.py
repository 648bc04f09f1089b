"""Read dataset files over HTTP: `http(s)://...` and `hf://datasets/ORG/NAME[@REV]/PATH`, with retries.

    with open_http("hf://datasets/me/cifar5m/data/train-000000.tar") as f:
        header = f.read(512)

An `hf://` URL becomes the Hub's plain file URL (`huggingface_hub.hf_hub_url`: `$HF_ENDPOINT/datasets/
ORG/NAME/resolve/REV/PATH`), read with the token `huggingface_hub.get_token()` finds. We read that URL
ourselves rather than through `HfFileSystem` so that the Hub and any web server share one code path, one
retry policy and one set of error messages, and because HfFileSystem asks the Hub API (revision,
paths-info) before every file it opens. A REV holding `/` (`refs/pr/1`) must be URL-quoted (`refs%2Fpr%2F1`).

Transient failures (HTTP 429/5xx, refused or reset connections, timeouts) are retried with exponential
backoff, also mid-file: the read resumes where it broke with a `Range` request. 401/403/404 fail at once
with one line that names the URL and what to do. The token goes only to the Hub's own host: a redirect to
another host (the Hub's CDN) does not carry it.
"""
from __future__ import annotations

import http.client
import io
import logging
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from shards.errors import ShardsError

log = logging.getLogger(__name__)

ATTEMPTS = 5  # 4 waits of 0.5, 1, 2, 4 s: rides out a server restart, fails within ~8 s when it is down
BACKOFF_S = 0.5
TIMEOUT_S = 60
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
TRANSIENT_ERRORS = (ConnectionError, TimeoutError, http.client.IncompleteRead, http.client.RemoteDisconnected)


# The Hub's rule for ORG and NAME (huggingface_hub.utils.validate_repo_id): letters, digits, '-', '_', '.';
# 1 to 96 of them; not starting or ending with '-' or '.'; no '--' or '..'.
_REPO_PART = re.compile(r"(?!.*(--|\.\.))[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?")


def split_hub_url(url: str) -> tuple[str, str | None, str]:
    """`hf://datasets/ORG/NAME[@REV][/PATH]` -> (repo id, revision or None, path)."""
    parts = url[len("hf://"):].split("/", 3) if url.startswith("hf://") else []
    if len(parts) < 3 or parts[0] != "datasets" or not parts[1] or not parts[2].split("@")[0]:
        raise ShardsError(f"{url}: expected hf://datasets/ORG/NAME[@REVISION]; check the dataset URL")
    name, _, revision = parts[2].partition("@")
    for part in (parts[1], name):
        if not _REPO_PART.fullmatch(part):
            raise ShardsError(f"{url}: {part!r} is not a Hub repo name (letters, digits, '-', '_', '.'; not "
                              "starting or ending with '-' or '.'; no '--' or '..'; at most 96); expected "
                              "hf://datasets/ORG/NAME[@REVISION]")
    return f"{parts[1]}/{name}", unquote(revision) or None, parts[3] if len(parts) > 3 else ""


def check_dataset_url(url: str) -> str:
    """Return a dataset URL without its trailing `/`; an `hf://` one must name just the repo (and revision)."""
    url = url.rstrip("/")
    if url.startswith("hf://") and split_hub_url(url)[2]:
        raise ShardsError(f"{url}: expected hf://datasets/ORG/NAME[@REVISION] (a dataset repo, not a file in it)")
    return url


def hub_file_url(url: str) -> str:
    """The Hub's plain HTTP URL of an `hf://datasets/...` file (honours HF_ENDPOINT)."""
    from huggingface_hub import hf_hub_url  # deferred: keeps `import shards` fast

    repo_id, revision, path = split_hub_url(url)
    return hf_hub_url(repo_id, path, repo_type="dataset", revision=revision)


def _hub_token(http_url: str) -> str | None:
    """The Hub token, only for a URL on the Hub's own host."""
    from huggingface_hub import constants, get_token

    return get_token() if urlsplit(http_url).netloc == urlsplit(constants.ENDPOINT).netloc else None


class _SameHostAuth(urllib.request.HTTPRedirectHandler):
    """Keep the Authorization header on redirects within one host only (urllib drops unredirected headers)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        auth = req.unredirected_hdrs.get("Authorization")
        if new is not None and auth and urlsplit(newurl).netloc == urlsplit(req.full_url).netloc:
            new.add_unredirected_header("Authorization", auth)
        return new


_OPENER = urllib.request.build_opener(_SameHostAuth)


class RemoteNotFound(ShardsError):
    """HTTP 404: the file (or the repo, or the revision) does not exist."""


def _fatal(shown: str, exc: urllib.error.HTTPError) -> ShardsError:
    what = f"{shown}: HTTP {exc.code} {exc.reason}"
    if exc.code in (401, 403):
        return ShardsError(f"{what}: not authorised; for a private or gated Hub dataset set HF_TOKEN (or run "
                           "`hf auth login`) with read access to it, then re-run")
    if exc.code == 404:
        return RemoteNotFound(f"{what}: not found; check the repo id or URL, the revision (@REV) and that the "
                           "dataset was published completely")
    return ShardsError(f"{what}; check the URL")


def _request(url: str, shown: str, start: int) -> http.client.HTTPResponse:
    """GET `url` from byte `start`, retrying transient failures; a ShardsError for the rest."""
    for attempt in range(1, ATTEMPTS + 1):
        request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
        token = _hub_token(url)
        if token:
            request.add_unredirected_header("Authorization", f"Bearer {token}")
        try:
            response = _OPENER.open(request, timeout=TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code not in TRANSIENT_STATUS:
                raise _fatal(shown, exc) from None
            problem = f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, *TRANSIENT_ERRORS) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, (socket.gaierror, ssl.SSLError)):  # retrying changes nothing
                raise ShardsError(f"{shown}: {reason}; check the URL's host and the network") from None
            problem = str(reason)
        else:
            if start and response.status != 206:  # the server ignored Range: skip what was read already
                _skip(response, start)
            return response
        if attempt == ATTEMPTS:
            raise ShardsError(f"{shown}: {problem} ({ATTEMPTS} tries); check the URL and the network, "
                              "then re-run")
        delay = BACKOFF_S * 2 ** (attempt - 1)
        log.warning("%s: %s; retrying in %.1f s (try %d of %d)", shown, problem, delay, attempt + 1, ATTEMPTS)
        time.sleep(delay)
    raise AssertionError("unreachable")


def _skip(response: http.client.HTTPResponse, count: int) -> None:
    while count:
        chunk = response.read(min(count, 1 << 20))
        if not chunk:
            raise ConnectionResetError("the body ended before the resume point")
        count -= len(chunk)


class _ResumingReader(io.RawIOBase):
    """A response body that reopens at its current offset (a Range request) when the connection breaks."""

    def __init__(self, url: str, shown: str):
        self.url, self.shown, self.offset = url, shown, 0
        self.response = None  # set before the request: close() runs even when it fails
        self.response = _request(url, shown, 0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                count = self.response.readinto(buffer)
                if not count and len(buffer) and self.response.length:
                    # http.client's readinto returns 0 where the body ends before its Content-Length
                    raise http.client.IncompleteRead(b"", self.response.length)
                self.offset += count
                return count
            except TRANSIENT_ERRORS as exc:
                if attempt == ATTEMPTS:
                    raise ShardsError(f"{self.shown}: connection broke {ATTEMPTS} times at byte "
                                      f"{self.offset:,} ({exc}); check the network and re-run") from exc
                log.warning("%s: %s at byte %d; resuming", self.shown, exc, self.offset)
                self.response.close()
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
                self.response = _request(self.url, self.shown, self.offset)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.response is not None:
            self.response.close()
        super().close()


def open_http(url: str, buffer_size: int = 1 << 20) -> BinaryIO:
    """Open an `http(s)://` or `hf://datasets/...` file for reading, with retries (see the module doc)."""
    target = hub_file_url(url) if url.startswith("hf://") else url
    shown = url if target == url else f"{url} ({target})"
    return io.BufferedReader(_ResumingReader(target, shown), buffer_size)
