"""Read dataset files over HTTP: `http(s)://...` and `hf://datasets/ORG/NAME[@REV]/PATH`, with retries.

    with open_http("hf://datasets/me/cifar5m/data/train-000000.tar") as f:
        header = f.read(512)

An `hf://` URL becomes the Hub's plain file URL (`huggingface_hub.hf_hub_url`: `$HF_ENDPOINT/datasets/
ORG/NAME/resolve/REV/PATH`), read with the token `huggingface_hub.get_token()` finds. We read that URL
ourselves rather than through `HfFileSystem` so that the Hub and any web server share one code path, one
retry policy and one set of error messages, and because HfFileSystem asks the Hub API (revision,
paths-info) before every file it opens. A REV holding `/` (`refs/pr/1`) must be URL-quoted (`refs%2Fpr%2F1`).

Transient failures (HTTP 429/5xx, refused or reset connections, timeouts) are retried with exponential
backoff, also mid-file: the read resumes where it broke with a `Range` request. Each file has one budget
for all its connections: ATTEMPTS tries (progress does not refill them), a total deadline
(`DEEPBOOT_HTTP_DEADLINE_S`, default 3600 s) and a minimum rate (`DEEPBOOT_HTTP_MIN_RATE`, default 10,000
bytes/s over each 30 s; a connection silent for 30 s is dropped too), both counted in time spent waiting on
the network, so a server that stalls after half of each response, or sends 1 byte/s, fails with one line
instead of being read forever. 401/403/404 fail at once
with one line that names the URL and what to do. The token goes only to the Hub's own host: a redirect to
another host (the Hub's CDN) does not carry it.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import math
import os
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

ATTEMPTS = 5  # per file, all its connections together: 4 waits of 0.5, 1, 2, 4 s ride out a server restart
BACKOFF_S = 0.5
TIMEOUT_S = 30  # a connection silent this long is stalled: dropped, and the read resumed (one try)
# Per file, overridable by the environment: the most one file may take, all tries together, and the slowest
# connection kept (over each RATE_WINDOW_S). The defaults let a 1 GB shard through at 0.3 MB/s while a
# server that stalls or crawls (1 byte/s) fails in ATTEMPTS x 30 s + backoff, about 2.6 minutes.
DEADLINE_S = 3600
MIN_RATE = 10_000  # bytes/s
RATE_WINDOW_S = 30
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
TRANSIENT_ERRORS = (ConnectionError, TimeoutError, http.client.IncompleteRead, http.client.RemoteDisconnected)


# The Hub's rule for ORG and NAME (huggingface_hub.utils.validate_repo_id): letters, digits, '-', '_', '.';
# 1 to 96 of them; not starting or ending with '-' or '.'; no '--' or '..'.
_REPO_PART = re.compile(r"(?!.*(--|\.\.))[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?")


def split_hub_url(url: str) -> tuple[str, str | None, str]:
    """`hf://datasets/ORG/NAME[@REV][/PATH]` -> (repo id, revision or None, path)."""
    parts = url[len("hf://") :].split("/", 3) if url.startswith("hf://") else []
    if len(parts) < 3 or parts[0] != "datasets" or not parts[1] or not parts[2].split("@")[0]:
        raise ShardsError(f"{url}: expected hf://datasets/ORG/NAME[@REVISION]; check the dataset URL")
    name, _, revision = parts[2].partition("@")
    for part in (parts[1], name):
        if not _REPO_PART.fullmatch(part):
            raise ShardsError(
                f"{url}: {part!r} is not a Hub repo name (letters, digits, '-', '_', '.'; not "
                "starting or ending with '-' or '.'; no '--' or '..'; at most 96); expected "
                "hf://datasets/ORG/NAME[@REVISION]"
            )
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
        return ShardsError(
            f"{what}: not authorised; for a private or gated Hub dataset set HF_TOKEN (or run "
            "`hf auth login`) with read access to it, then re-run"
        )
    if exc.code == 404:
        return RemoteNotFound(
            f"{what}: not found; check the repo id or URL, the revision (@REV) and that the "
            "dataset was published completely"
        )
    return ShardsError(f"{what}; check the URL")


def _limits() -> tuple[float, float]:
    """(deadline in s, minimum rate in bytes/s) for one file: the module defaults, or the environment's."""
    values = []
    for name, default in (("DEEPBOOT_HTTP_DEADLINE_S", DEADLINE_S), ("DEEPBOOT_HTTP_MIN_RATE", MIN_RATE)):
        text = os.environ.get(name, "")
        try:
            value = float(text) if text else float(default)
        except ValueError:
            value = -1.0
        if not 0 < value < math.inf:
            raise ShardsError(f"{name}={text!r}: must be a positive number (default {default:,}); fix or unset it")
        values.append(value)
    return values[0], values[1]


class _TooSlow(TimeoutError):
    """A connection slower than the minimum rate: dropped and resumed like a stalled one."""


class _Transfer:
    """One file's budget, all its connections together: ATTEMPTS tries (progress does not refill them), a
    deadline and a minimum rate. Both count time spent waiting on the network (connecting, reading, backing
    off), not the reader's own work between reads: a slow consumer of a stream is not a slow server."""

    def __init__(self, shown: str):
        self.shown = shown
        self.deadline_s, self.min_rate = _limits()
        self.tries = 0
        self.spent_s = 0.0
        self.window_s, self.window_bytes = 0.0, 0  # the network time and bytes of the current rate window

    def timeout_s(self) -> float:
        """The socket timeout of the next connection: TIMEOUT_S, but never past the deadline."""
        return max(0.001, min(TIMEOUT_S, self.deadline_s - self.spent_s))

    @contextlib.contextmanager
    def waiting(self):
        """Count the time of the block as network time (the caller adds what it read to window_bytes)."""
        began = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - began
            self.spent_s += took
            self.window_s += took

    def failed(self, problem: str, offset: int) -> None:
        """Count one failed try; give up (ShardsError) when the tries or the time are spent, else back off."""
        self.tries += 1
        at = f" at byte {offset:,}" if offset else ""
        if self.tries >= ATTEMPTS:
            raise ShardsError(
                f"{self.shown}: {problem}{at} ({ATTEMPTS} tries); check the URL and the network, then re-run"
            )
        delay = BACKOFF_S * 2 ** (self.tries - 1)
        if self.spent_s + delay >= self.deadline_s:
            raise self.overdue(problem, offset)
        log.warning(
            "%s: %s%s; retrying in %.1f s (try %d of %d)", self.shown, problem, at, delay, self.tries + 1, ATTEMPTS
        )
        time.sleep(delay)
        self.spent_s += delay
        self.window_s, self.window_bytes = 0.0, 0

    def overdue(self, problem: str, offset: int) -> ShardsError:
        return ShardsError(
            f"{self.shown}: not read within its deadline of {self.deadline_s:,.0f} s ({problem}; "
            f"{offset:,} bytes read, {self.tries} failed tries); check the network and re-run, or "
            "raise DEEPBOOT_HTTP_DEADLINE_S for a slow link"
        )

    def check(self, offset: int) -> None:
        """Between reads: past the deadline is a ShardsError; a rate window under min_rate a _TooSlow (the
        connection is dropped and the read resumed, as one failed try)."""
        if self.spent_s > self.deadline_s:
            raise self.overdue("still reading", offset)
        if self.window_s >= RATE_WINDOW_S:
            rate, took = self.window_bytes / self.window_s, self.window_s
            self.window_s, self.window_bytes = 0.0, 0
            if rate < self.min_rate:
                raise _TooSlow(
                    f"connection too slow: {rate:,.0f} bytes/s over {took:.1f} s, under the minimum "
                    f"{self.min_rate:,.0f} (DEEPBOOT_HTTP_MIN_RATE)"
                )


def _request(url: str, transfer: _Transfer, start: int) -> http.client.HTTPResponse:
    """GET `url` from byte `start`, retrying transient failures within the file's budget; a ShardsError
    for the rest."""
    shown = transfer.shown
    while True:
        request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
        token = _hub_token(url)
        if token:
            request.add_unredirected_header("Authorization", f"Bearer {token}")
        try:
            with transfer.waiting():
                response = _OPENER.open(request, timeout=transfer.timeout_s())
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
        transfer.failed(problem, start)


def _skip(response: http.client.HTTPResponse, count: int) -> None:
    while count:
        chunk = response.read(min(count, 1 << 20))
        if not chunk:
            raise ConnectionResetError("the body ended before the resume point")
        count -= len(chunk)


class _ResumingReader(io.RawIOBase):
    """A response body that reopens at its current offset (a Range request) when the connection breaks,
    stalls or crawls, within one budget for the whole file (_Transfer)."""

    def __init__(self, url: str, shown: str):
        self.url, self.offset = url, 0
        self.transfer = _Transfer(shown)
        self.response = None  # set before the request: close() runs even when it fails
        self.response = _request(url, self.transfer, 0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            try:
                self.transfer.check(self.offset)
                # read1: one recv at most, so the deadline and the rate are checked between recvs (read()
                # would block until the whole buffer is full, however slowly the bytes come)
                with self.transfer.waiting():
                    data = self.response.read1(len(buffer))
                self.transfer.window_bytes += len(data)
                if not data and len(buffer) and self.response.length:
                    # the body ended before its Content-Length
                    raise http.client.IncompleteRead(b"", self.response.length)
                buffer[: len(data)] = data
                self.offset += len(data)
                return len(data)
            except TRANSIENT_ERRORS as exc:
                self.response.close()
                problem = str(exc) if isinstance(exc, _TooSlow) else f"connection broke ({exc})"
                self.transfer.failed(problem, self.offset)
                self.response = _request(self.url, self.transfer, self.offset)

    def close(self) -> None:
        if self.response is not None:
            self.response.close()
        super().close()


def open_http(url: str, buffer_size: int = 1 << 20) -> BinaryIO:
    """Open an `http(s)://` or `hf://datasets/...` file for reading, with retries (see the module doc)."""
    target = hub_file_url(url) if url.startswith("hf://") else url
    shown = url if target == url else f"{url} ({target})"
    return io.BufferedReader(_ResumingReader(target, shown), buffer_size)
