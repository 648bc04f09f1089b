"""Datasets by URL: download `hf://datasets/ORG/NAME[@REV]` or `http(s)://.../DATASET` to a local folder,
and publish a local dataset to the Hugging Face Hub.

Downloads go to `remote/` in the user cache directory (shards.cachedir), shard by shard, each checked against the
manifest's sha256 before it is renamed into place; the manifest is written last, so an interrupted
download resumes and is never read half-done. A shard already in the cache is kept only when its sha256
matches (a re-published dataset may change a shard's labels but not its size); `rehash=True` (`shards
fetch`) re-hashes the whole cached copy even when its manifest is the remote one. Both kinds of URL are read by shards.httpio (retries,
clear 401/403/404 errors). Every file name comes from the manifest, which is checked to name only
`data/{split}-NNNNNN.tar` files, and every destination is checked to stay inside the cache folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from shards.cachedir import user_cache_root
from shards.diskspace import no_space_is_one_line
from shards.errors import ShardsError
from shards.httpio import RemoteNotFound, check_dataset_url
from shards.identity import sha256_file
from shards.jsonio import atomic_target, write_json_atomic
from shards.manifest import MANIFEST, Manifest, ShardEntry, load_manifest, parse_manifest
from shards.naming import shard_path
from shards.read import open_url
from shards.urls import is_url
from shards.verify import verify_dataset

log = logging.getLogger(__name__)

# Downloaded when present; the dataset is complete without them.
SIDE_FILES = ("README.md", "_info.json", "croissant.json")


def remote_cache_dir() -> Path:
    return user_cache_root() / "remote"


def resolve_dataset(
    location: str | os.PathLike, cache_dir: str | os.PathLike | None = None, rehash: bool = False
) -> Path:
    """A local dataset folder for a path, an `http(s)://` dataset URL or `hf://datasets/ORG/NAME[@REV]`.

    `rehash`: check every cached shard's sha256 even when the cached manifest is the remote one."""
    location = str(location)
    if is_url(location):
        return _download(check_dataset_url(location), Path(cache_dir) if cache_dir else remote_cache_dir(), rehash)
    root = Path(location)
    if not root.is_dir():
        raise ShardsError(
            f"{location}: no such dataset folder; give a dataset folder, http(s):// URL or hf://datasets/ORG/NAME"
        )
    return root


def _fetch(url: str, dest: Path, sha256: str | None = None) -> None:
    """Download `url` to `dest` via a temp file beside it, checking its sha256 when one is given."""
    digest = hashlib.sha256()
    with atomic_target(dest, suffix=".part") as tmp:
        with open_url(url) as src, open(tmp, "wb") as out:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                out.write(chunk)
                digest.update(chunk)
        if sha256 and digest.hexdigest() != sha256:
            raise ShardsError(
                f"{url}: sha256 {digest.hexdigest()[:12]} does not match the manifest's "
                f"{sha256[:12]}; the remote copy is corrupt or changing, re-publish it"
            )


def _is_cached(dest: Path, entry: ShardEntry) -> bool:
    """The cached shard is the manifest's: same size and sha256 (a size match alone is not enough)."""
    if not dest.is_file():
        return False
    if dest.stat().st_size == entry.bytes:
        if sha256_file(dest) == entry.sha256:
            return True
    log.warning("%s: the cached copy differs from the manifest (size or sha256); downloading it again", dest)
    return False


def _download(url: str, cache_dir: Path, rehash: bool = False) -> Path:
    root = cache_dir / hashlib.sha256(url.encode()).hexdigest()[:16]
    (root / "data").mkdir(parents=True, exist_ok=True)
    with open_url(f"{url}/{MANIFEST}") as f:
        manifest = parse_manifest(f.read(), f"{url}/{MANIFEST}")  # checks every shard file name
    if not rehash and (root / MANIFEST).is_file() and load_manifest(root).to_dict() == manifest.to_dict():
        return root  # each shard was hashed when downloaded; readers check them again as they read them
    (root / MANIFEST).unlink(missing_ok=True)  # incomplete until every shard checks: a failed run re-checks
    entries = [e for s in manifest.splits.values() for e in s.shards]
    with no_space_is_one_line(root, sum(e.bytes for e in entries)):  # at most the whole dataset is needed
        for entry in tqdm(entries, desc=f"downloading {url}", unit="shard"):
            dest = shard_path(root, entry.file)
            if not _is_cached(dest, entry):
                _fetch(f"{url}/{entry.file}", dest, entry.sha256)
        for name in SIDE_FILES:
            try:
                _fetch(f"{url}/{name}", root / name)
            except RemoteNotFound:
                log.info("%s/%s not found; continuing without it", url, name)
        write_json_atomic(root / MANIFEST, manifest.to_dict())
    return root


# --- publishing ---------------------------------------------------------------------------------------
def upload_plan(root: str | os.PathLike) -> list[str]:
    """The files `publish` uploads, in commit order: shards (and extras) first, card and manifest last,
    so a reader of the repo never sees a manifest that lists shards not yet uploaded."""
    root = Path(root)
    manifest = load_manifest(root)
    shards = [e.file for s in manifest.splits.values() for e in s.shards]
    extras = sorted(p.relative_to(root).as_posix() for p in (root / "extras").rglob("*") if p.is_file())
    last = [name for name in ("_info.json", "croissant.json", "README.md") if (root / name).is_file()] + [MANIFEST]
    return shards + extras + last


def hub_dataset_url(repo_id: str, revision: str | None = None) -> str:
    from huggingface_hub import constants

    return f"{constants.ENDPOINT}/datasets/{repo_id}" + (f"/tree/{revision}" if revision else "")


def loading_snippets(repo_id: str, split: str, revision: str | None = None) -> list[str]:
    """One line each: HF datasets, the trainer and a local copy."""
    rev = f", revision={revision!r}" if revision else ""
    url = f"hf://datasets/{repo_id}" + (f"@{revision}" if revision else "")
    return [
        f"datasets.load_dataset({repo_id!r}, split={split!r}, streaming=True{rev})",
        f"python -m train run --data {url} --mode real --n 50000",
        f"python -m shards fetch {url}",
    ]


def _remote_manifest(repo_id: str, revision: str | None) -> Manifest | None:
    """The repo's manifest.json, or None when the repo (or the file) does not exist yet."""
    url = f"hf://datasets/{repo_id}" + (f"@{revision}" if revision else "")
    try:
        return load_manifest(url)
    except RemoteNotFound:
        return None


def _head(api, repo_id: str, revision: str | None) -> str | None:
    """The commit the branch (or PR ref) `revision` (main) points to; None while the repo does not exist.

    Read from the repo's git refs, not `repo_info`, whose sha can lag behind the last commit and so fail a
    parent_commit check with no one else committing (github.com/evaleval/every_eval_ever/pull/265)."""
    if not api.repo_exists(repo_id, repo_type="dataset"):
        return None
    refs = api.list_repo_refs(repo_id, repo_type="dataset", include_pull_requests=True)
    wanted = revision or "main"
    for ref in [*refs.branches, *(refs.pull_requests or [])]:
        if wanted in (ref.name, ref.ref):
            return ref.target_commit
    raise ShardsError(
        f"{repo_id}: no branch {wanted!r} to publish to; create it on the Hub first "
        "(`hf repo branch create`), or leave out --revision (nothing was uploaded)"
    )


def _stale_shards(local: Manifest, remote: Manifest | None, repo_id: str, force: bool) -> list[str]:
    """Refuse a repo holding another dataset unless `force`; then the old shards ours lacks (to delete)."""
    if remote is None or remote.config_hash == local.config_hash:
        return []
    if not force:
        raise ShardsError(
            f"{repo_id}: already holds another dataset (config hash {remote.config_hash[:12]}..., yours "
            f"{local.config_hash[:12]}...); publish to another repo, or pass --overwrite to replace it"
        )
    ours = {e.file for s in local.splits.values() for e in s.shards}
    return sorted({e.file for s in remote.splits.values() for e in s.shards} - ours)


def _is_conflict(exc: Exception) -> bool:
    """The Hub's answer to a commit whose parent_commit is no longer the branch's head: 412."""
    return getattr(getattr(exc, "response", None), "status_code", None) == 412


@dataclass(frozen=True)
class PublishCheck:
    """One check a publish makes before uploading: its name, whether it passed, and what it found."""

    name: str
    ok: bool
    detail: str
    remote: Manifest | None = None  # the repo check: the manifest the repo holds, if any


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it (constants._is_true), read now: the library's own constant is
    fixed when it is imported."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def publish_checks(
    root: str | os.PathLike, repo_id: str, revision: str | None = None, force: bool = False
) -> Iterator[PublishCheck]:
    """The checks of a publish, in order: offline mode, token, verify, the repo's state (where reachable).
    `publish` stops at the first that fails; `--dry-run` runs them all and reports each."""
    from huggingface_hub import get_token

    offline, token = hub_offline(), get_token()
    yield PublishCheck(
        "online",
        not offline,
        "HF_HUB_OFFLINE=1 is set: publishing needs the Hub; unset it and re-run (nothing was uploaded)"
        if offline
        else "HF_HUB_OFFLINE not set",
    )
    yield PublishCheck(
        "token",
        bool(token),
        "found (write access is proven only by the upload)"
        if token
        else "no Hugging Face token: set HF_TOKEN or run `hf auth login` with a token that can "
        "write to the repo, then re-run (nothing was uploaded)",
    )
    report = verify_dataset(Path(root), decode=False)
    yield PublishCheck(
        "verify",
        report.ok,
        f"{report.shards_checked} shards, {report.samples_checked:,} samples: sizes and sha256s match the manifest"
        if report.ok
        else f"{root}: verify failed ({report.problems[0]}); fix the dataset before publishing",
    )
    yield _repo_check(root, repo_id, revision, force, offline)


def _repo_check(root, repo_id: str, revision: str | None, force: bool, offline: bool) -> PublishCheck:
    """Whether the repo is new, holds this dataset (a re-run resumes) or another one (refused unless force)."""
    if offline:
        return PublishCheck("repo", True, "not checked (offline)")
    remote = _remote_manifest(repo_id, revision)
    if remote is None:
        return PublishCheck("repo", True, f"{repo_id}: no dataset of ours there yet (created if need be)")
    local = load_manifest(root)
    if remote.config_hash == local.config_hash:
        return PublishCheck("repo", True, f"{repo_id}: holds this dataset; publishing again resumes", remote)
    what = (
        f"{repo_id}: already holds another dataset (config hash {remote.config_hash[:12]}..., yours "
        f"{local.config_hash[:12]}...)"
    )
    todo = "; --overwrite replaces it" if force else "; publish to another repo, or pass --overwrite to replace it"
    return PublishCheck("repo", force, what + todo, remote)


def publish(
    root: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    message: str | None = None,
    force: bool = False,
) -> str:
    """Check (publish_checks), then upload a local dataset to a Hub dataset repo; returns the dataset's URL.

    Two commits: the shards, then card + manifest. Re-running resumes (the Hub skips files it has).
    A repo whose manifest describes another dataset is refused unless `force`; then the old dataset's
    shards that the new one lacks are deleted (only those: other files in the repo are not ours).
    The manifest is read at the branch's head commit and each commit names its parent (`parent_commit`,
    the Hub's optimistic concurrency): if anything else commits to the branch meanwhile (another publish),
    the Hub refuses the next commit, so a repo never ends with one dataset's manifest over another's shards."""
    from huggingface_hub import HfApi

    for check in publish_checks(root, repo_id, revision, force):
        if not check.ok:
            raise ShardsError(check.detail)
    root = Path(root)
    local = load_manifest(root)
    plan = upload_plan(root)
    first = [f for f in plan if f.startswith(("data/", "extras/"))]
    api = HfApi()
    try:
        parent = _head(api, repo_id, revision)
        if parent is None:
            api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            parent = _head(api, repo_id, revision)
        stale = _stale_shards(local, _remote_manifest(repo_id, parent), repo_id, force)
        for files, note, delete in ((first, " (shards)", stale or None), (plan[len(first) :], "", None)):
            parent = api.upload_folder(
                folder_path=str(root),
                repo_id=repo_id,
                repo_type="dataset",
                revision=revision,
                commit_message=(message or f"Upload {root.name}") + note,
                allow_patterns=files,
                delete_patterns=delete,
                parent_commit=parent,
            ).oid
    except ShardsError:
        raise
    except Exception as exc:  # hub errors have many types; report them as one clear message
        if _is_conflict(exc):
            raise ShardsError(
                f"{repo_id}: someone else committed to it while this publish ran (another publish?), "
                "so it stopped before its manifest; check what the repo holds now, then re-run the "
                "same command"
            ) from exc
        raise ShardsError(
            f"publishing {root} to {repo_id} failed ({type(exc).__name__}: {exc}); "
            "check `hf auth login`/HF_TOKEN and re-run the same command to resume"
        ) from exc
    return hub_dataset_url(repo_id, revision)
