"""Datasets by URL: download `hf://datasets/ORG/NAME[@REV]` or `http(s)://.../DATASET` to a local folder,
and publish a local dataset to the Hugging Face Hub.

Downloads go to a cache (`~/.cache/deep-bootstrap/remote/`), shard by shard, each checked against the
manifest's sha256 before it is renamed into place; the manifest is written last, so an interrupted
download resumes and is never read half-done. Both kinds of URL are read by shards.httpio (retries,
clear 401/403/404 errors). Every file name comes from the manifest, which is checked to name only
`data/{split}-NNNNNN.tar` files, and every destination is checked to stay inside the cache folder.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from tqdm.auto import tqdm

from shards.errors import ShardsError
from shards.httpio import RemoteNotFound, check_dataset_url
from shards.jsonio import atomic_target, write_json_atomic
from shards.manifest import MANIFEST, Manifest, load_manifest, parse_manifest
from shards.naming import shard_path
from shards.read import open_url
from shards.urls import is_url
from shards.verify import verify_dataset

log = logging.getLogger(__name__)

SIDE_FILES = ("README.md", "_info.json")  # downloaded when present; the dataset is complete without them


def remote_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "deep-bootstrap" / "remote"


def resolve_dataset(location: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """A local dataset folder for a path, an `http(s)://` dataset URL or `hf://datasets/ORG/NAME[@REV]`."""
    location = str(location)
    if is_url(location):
        return _download(check_dataset_url(location), Path(cache_dir) if cache_dir else remote_cache_dir())
    root = Path(location)
    if not root.is_dir():
        raise ShardsError(f"{location}: no such dataset folder; give a dataset folder, http(s):// URL or "
                          "hf://datasets/ORG/NAME")
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
            raise ShardsError(f"{url}: sha256 {digest.hexdigest()[:12]} does not match the manifest's "
                              f"{sha256[:12]}; the remote copy is corrupt or changing, re-publish it")


def _download(url: str, cache_dir: Path) -> Path:
    root = cache_dir / hashlib.sha256(url.encode()).hexdigest()[:16]
    (root / "data").mkdir(parents=True, exist_ok=True)
    with open_url(f"{url}/{MANIFEST}") as f:
        manifest = parse_manifest(f.read(), f"{url}/{MANIFEST}")  # checks every shard file name
    if (root / MANIFEST).is_file() and load_manifest(root).to_dict() == manifest.to_dict():
        return root
    entries = [e for s in manifest.splits.values() for e in s.shards]
    for entry in tqdm(entries, desc=f"downloading {url}", unit="shard"):
        dest = shard_path(root, entry.file)
        if not (dest.is_file() and dest.stat().st_size == entry.bytes):
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
    last = [name for name in ("_info.json", "README.md") if (root / name).is_file()] + [MANIFEST]
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


def publish(root: str | os.PathLike, repo_id: str, private: bool = False, revision: str | None = None,
            message: str | None = None, force: bool = False) -> str:
    """Verify a local dataset, then upload it to a Hub dataset repo; returns the dataset's URL.

    Two commits: the shards, then card + manifest. Re-running resumes (the Hub skips files it has).
    A repo whose manifest describes another dataset is refused unless `force`; then the old dataset's
    shards that the new one lacks are deleted (only those: other files in the repo are not ours)."""
    from huggingface_hub import HfApi, get_token

    if not get_token():
        raise ShardsError("no Hugging Face token: set HF_TOKEN or run `hf auth login` with a token that can "
                          "write to the repo, then re-run (nothing was uploaded)")
    root = Path(root)
    report = verify_dataset(root, decode=False)
    if not report.ok:
        raise ShardsError(f"{root}: verify failed ({report.problems[0]}); fix the dataset before publishing")
    local = load_manifest(root)
    remote = _remote_manifest(repo_id, revision)
    stale = []
    if remote is not None and remote.config_hash != local.config_hash:
        if not force:
            raise ShardsError(
                f"{repo_id}: already holds another dataset (config hash {remote.config_hash[:12]}..., yours "
                f"{local.config_hash[:12]}...); publish to another repo, or pass --overwrite to replace it")
        ours = {e.file for s in local.splits.values() for e in s.shards}
        stale = sorted({e.file for s in remote.splits.values() for e in s.shards} - ours)
    plan = upload_plan(root)
    first = [f for f in plan if f.startswith(("data/", "extras/"))]
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        for files, note, delete in ((first, " (shards)", stale or None), (plan[len(first):], "", None)):
            api.upload_folder(folder_path=str(root), repo_id=repo_id, repo_type="dataset", revision=revision,
                              commit_message=(message or f"Upload {root.name}") + note, allow_patterns=files,
                              delete_patterns=delete)
    except Exception as exc:  # hub errors have many types; report them as one clear message
        raise ShardsError(f"publishing {root} to {repo_id} failed ({type(exc).__name__}: {exc}); "
                          "check `hf auth login`/HF_TOKEN and re-run the same command to resume") from exc
    return hub_dataset_url(repo_id, revision)
