"""Datasets by URL: resolve `hf://datasets/ORG/NAME` or `http(s)://.../DATASET` to a local folder,
and publish a local dataset to the Hugging Face Hub.

Downloads go to a cache (`~/.cache/deep-bootstrap/remote/`), shard by shard, each checked against the
manifest's sha256 before it is renamed into place; the manifest is written last, so an interrupted
download resumes and is never read half-done.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from shards.errors import ShardsError
from shards.jsonio import write_json_atomic
from shards.manifest import MANIFEST, Manifest, load_manifest

log = logging.getLogger(__name__)


def remote_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "deep-bootstrap" / "remote"


def resolve_dataset(location: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """A local dataset folder for a path, an `http(s)://` dataset URL or `hf://datasets/ORG/NAME[@REV]`."""
    location = str(location)
    if location.startswith("hf://"):
        return _from_hub(location)
    if location.startswith(("http://", "https://")):
        return _from_http(location.rstrip("/"), Path(cache_dir) if cache_dir else remote_cache_dir())
    root = Path(location)
    if not root.is_dir():
        raise ShardsError(f"{location}: no such dataset folder; give a dataset folder, http(s):// URL or "
                          "hf://datasets/ORG/NAME")
    return root


def _from_hub(url: str) -> Path:
    rest = url[len("hf://"):]
    if not rest.startswith("datasets/") or rest.count("/") < 2:
        raise ShardsError(f"{url}: expected hf://datasets/ORG/NAME[@REVISION]")
    repo_id, _, revision = rest[len("datasets/"):].partition("@")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision or None,
                                      allow_patterns=["manifest.json", "README.md", "_info.json", "data/*"]))
    except Exception as exc:  # hub errors have many types; all mean "cannot fetch this repo"
        raise ShardsError(f"{url}: cannot download from the Hugging Face Hub ({type(exc).__name__}: {exc}); "
                          "check the repo id, HF_TOKEN and network, or pass a local dataset folder") from exc


def _fetch(url: str, dest: Path, sha256: str | None = None) -> None:
    from shards.read import open_url

    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    with open_url(url) as src, open(tmp, "wb") as out:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            out.write(chunk)
            digest.update(chunk)
    if sha256 and digest.hexdigest() != sha256:
        tmp.unlink(missing_ok=True)
        raise ShardsError(f"{url}: sha256 {digest.hexdigest()[:12]} does not match the manifest's "
                          f"{sha256[:12]}; the remote copy is corrupt or changing, re-publish it")
    os.replace(tmp, dest)


def _from_http(url: str, cache_dir: Path) -> Path:
    from tqdm.auto import tqdm

    root = cache_dir / hashlib.sha256(url.encode()).hexdigest()[:16]
    (root / "data").mkdir(parents=True, exist_ok=True)
    staging = root / ".manifest.remote.json"
    _fetch(f"{url}/{MANIFEST}", staging)
    manifest = Manifest.from_dict(json.loads(staging.read_text()))
    if (root / MANIFEST).is_file() and load_manifest(root).to_dict() == manifest.to_dict():
        return root
    entries = [e for s in manifest.splits.values() for e in s.shards]
    for entry in tqdm(entries, desc=f"downloading {url}", unit="shard"):
        dest = root / entry.file
        if not (dest.is_file() and dest.stat().st_size == entry.bytes):
            _fetch(f"{url}/{entry.file}", dest, entry.sha256)
    for name in ("README.md", "_info.json"):
        try:
            _fetch(f"{url}/{name}", root / name)
        except ShardsError:
            log.info("%s/%s not found; continuing without it", url, name)
    write_json_atomic(root / MANIFEST, manifest.to_dict())
    staging.unlink(missing_ok=True)
    return root


def publish(root: str | os.PathLike, repo_id: str, private: bool = False, revision: str | None = None,
            message: str | None = None) -> str:
    """Verify a local dataset, then upload it to a Hub dataset repo (re-running resumes the upload)."""
    from shards.verify import verify_dataset

    root = Path(root)
    report = verify_dataset(root, decode=False)
    if not report.ok:
        raise ShardsError(f"{root}: verify failed ({report.problems[0]}); fix the dataset before publishing")
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(
            folder_path=str(root), repo_id=repo_id, repo_type="dataset", revision=revision,
            commit_message=message or f"Upload {root.name}",
            allow_patterns=["README.md", MANIFEST, "_info.json", "data/*", "extras/*"],
        )
    except Exception as exc:  # hub errors have many types; report them as one clear message
        raise ShardsError(f"publishing {root} to {repo_id} failed ({type(exc).__name__}: {exc}); "
                          "check `hf auth login`/HF_TOKEN and re-run the same command to resume") from exc
    return str(getattr(commit, "commit_url", commit))

