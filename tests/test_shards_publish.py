"""Publishing: verify first, shards before card and manifest, a dry run, another dataset refused unless
forced, a missing token refused before any work, and the URL and loading lines at the end."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import huggingface_hub.constants
import pytest
from hub_server import FakeHub
from huggingface_hub.hf_api import GitRefInfo, GitRefs
from shards_fixtures import build, index_samples, make_writer

import shards.httpio
from shards import ShardsError
from shards.cli import main
from shards.remote import publish

ROOT = Path(__file__).resolve().parents[1]
LAST = ["_info.json", "croissant.json", "README.md", "manifest.json"]


class PreconditionFailed(Exception):
    """What the Hub answers a commit whose parent_commit is not the branch's head: HTTP 412."""

    response = SimpleNamespace(status_code=412)


class FakeApi:
    """The Hub's commit API: branch heads move with each commit, and a commit whose parent_commit is not
    the head is refused with 412, as on the Hub. The repo's files at each commit are served by `hub`."""

    calls = []
    commits = []  # (commit, folder_path, allow_patterns) of the commits made
    heads: dict = {}  # (repo_id, branch) -> commit
    hub = None
    hooks: dict = {}  # "before" / "after": run once around the next commit (another publisher getting in)

    def repo_exists(self, repo_id, repo_type=None):
        return any(repo == repo_id for repo, _ in self.heads)

    def list_repo_refs(self, repo_id, repo_type=None, include_pull_requests=False):
        branches = [
            GitRefInfo(name=b, ref=f"refs/heads/{b}", target_commit=c)
            for (repo, b), c in self.heads.items()
            if repo == repo_id
        ]
        return GitRefs(branches=branches, converts=[], tags=[], pull_requests=[])

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))
        self.heads.setdefault((repo_id, "main"), "initial")

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw["repo_id"], kw))
        self._hook("before")
        branch = (kw["repo_id"], kw["revision"] or "main")
        if kw["parent_commit"] != self.heads[branch]:
            raise PreconditionFailed(f"412 Client Error: Precondition Failed (head is {self.heads[branch]})")
        commit = f"commit{len(self.calls)}"
        files = (
            Path(kw["folder_path"])
            if "manifest.json" in kw["allow_patterns"]
            else self.hub.repos.get((kw["repo_id"], self.heads[branch]), (None,))[0]
        )
        if files is not None:
            self.hub.add(kw["repo_id"], files, revision=commit)
        self.heads[branch] = commit
        self.commits.append((commit, kw["folder_path"], kw["allow_patterns"]))
        self._hook("after")
        return SimpleNamespace(oid=commit)

    def _hook(self, when):
        hook = FakeApi.hooks.pop(when, None)
        if hook:
            hook()


def put(hub, repo_id: str, folder: Path, branch: str = "main") -> None:
    """A repo whose `branch` holds `folder` at commit `branch`-head."""
    FakeApi.heads[(repo_id, branch)] = f"{branch}-head"
    hub.add(repo_id, folder, revision=f"{branch}-head")


@pytest.fixture
def hub(monkeypatch):
    """The Hub's API faked (uploads recorded), its file server on 127.0.0.1, and a token."""
    FakeApi.calls, FakeApi.commits, FakeApi.heads, FakeApi.hooks = [], [], {}, {}
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "hf_write")
    server = FakeHub().start()
    FakeApi.hub = server
    server.endpoint(monkeypatch)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return build(tmp_path_factory.mktemp("pub") / "ds")


def shard_files(root):
    return sorted(p.relative_to(root).as_posix() for p in (root / "data").iterdir())


def test_publish_uploads_shards_first_then_card_and_manifest(dataset, hub):
    url = publish(dataset, "me/index-images", private=True)
    assert url == f"{hub.url}/datasets/me/index-images"
    (_, repo, create), (_, _, first), (_, _, last) = FakeApi.calls
    assert repo == "me/index-images" and create == {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert first["allow_patterns"] == shard_files(dataset) and first["delete_patterns"] is None
    assert last["allow_patterns"] == LAST and last["commit_message"] == "Upload ds"
    assert first["folder_path"] == str(dataset) and first["repo_type"] == "dataset"
    # the repo was asked for its manifest by the checks, then at the head commit the upload builds on: none
    assert [r["path"] for r in hub.requests] == [
        "/datasets/me/index-images/resolve/main/manifest.json",
        "/datasets/me/index-images/resolve/initial/manifest.json",
    ]
    assert [c[2].get("parent_commit") for c in FakeApi.calls] == [None, "initial", "commit2"]


def test_publish_refuses_damaged_dataset(tmp_path, hub):
    root = build(tmp_path / "ds")
    (root / "data/test-000000.tar").unlink()
    with pytest.raises(ShardsError, match="verify failed"):
        publish(root, "me/index-images")
    assert FakeApi.calls == []


def test_another_dataset_in_the_repo_is_refused_unless_forced(dataset, hub, tmp_path):
    other = make_writer(tmp_path / "other", train=450)  # another config: 5 train shards where ours has 3
    other.prepare()
    for spec in other.pending():
        other.write_shard(spec, index_samples(spec))
    other.finalize()
    put(hub, "me/index-images", tmp_path / "other")
    with pytest.raises(
        ShardsError,
        match=r"me/index-images: already holds another dataset \(config hash "
        r"[0-9a-f]{12}\.\.\., yours [0-9a-f]{12}\.\.\.\); publish to another "
        "repo, or pass --overwrite to replace it",
    ):
        publish(dataset, "me/index-images")
    assert FakeApi.calls == []
    publish(dataset, "me/index-images", force=True)
    first = FakeApi.calls[0][2]
    # only the old dataset's shards that the new one lacks are deleted
    assert first["delete_patterns"] == ["data/train-000003.tar", "data/train-000004.tar"]


def test_republishing_the_same_dataset_resumes(dataset, hub):
    put(hub, "me/index-images", dataset)
    publish(dataset, "me/index-images")
    assert len(FakeApi.calls) == 2 and FakeApi.calls[0][2]["delete_patterns"] is None


def test_dry_run_prints_the_checks_the_plan_and_the_card_and_uploads_nothing(dataset, hub, capsys):
    assert main(["publish", str(dataset), "--repo", "me/index-images", "--dry-run"]) == 0
    out = capsys.readouterr().out
    listed = [line.split(". ", 1)[1] for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert listed == shard_files(dataset) + LAST
    assert out.startswith(
        f"dry run: publishing {dataset} to {hub.url}/datasets/me/index-images; checks:\n"
        "  ok    online: HF_HUB_OFFLINE not set\n"
        "  ok    token: found (write access is proven only by the upload)\n"
        "  ok    verify: 4 shards, 300 samples: sizes and sha256s match the manifest\n"
        "  ok    repo: me/index-images: no dataset of ours there yet (created if need be)\n"
    )
    assert (dataset / "README.md").read_text() in out
    assert out.rstrip().endswith("dry run: every check passes; nothing uploaded")
    assert FakeApi.calls == [] and all(r["path"].endswith("/manifest.json") for r in hub.requests)


def test_dry_run_says_what_would_fail_corrupt_shard_token_other_dataset(tmp_path, hub, capsys, monkeypatch):
    root = build(tmp_path / "ds")
    other = build(tmp_path / "other", train=200)
    hub.add("me/taken", other)
    shard = root / "data/train-000001.tar"
    shard.write_bytes(b"x" + shard.read_bytes()[1:])
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no stored token either
    assert main(["publish", str(root), "--repo", "me/taken", "--dry-run"]) == 1
    lines = capsys.readouterr().out.splitlines()
    failed = [line.split(":")[0].split()[-1] for line in lines if line.startswith("  FAIL")]
    assert failed == ["token", "verify", "repo"]
    assert lines[-1] == "dry run: publishing would fail (token, verify, repo); nothing uploaded"
    assert FakeApi.calls == []


def test_offline_mode_is_one_clear_line_before_any_work(dataset, hub, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["publish", str(dataset), "--repo", "me/index-images"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: HF_HUB_OFFLINE=1 is set: publishing needs the Hub; unset it and re-run (nothing was uploaded)"
    )
    assert FakeApi.calls == [] and hub.requests == []
    assert main(["publish", str(dataset), "--repo", "me/index-images", "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert "  FAIL  online: HF_HUB_OFFLINE=1 is set" in out and "  ok    repo: not checked (offline)" in out
    assert hub.requests == []


def test_cli_ends_with_the_url_and_loading_lines(dataset, hub, capsys):
    FakeApi.heads[("me/index-images", "v2")] = "v2-head"
    assert main(["publish", str(dataset), "--repo", "me/index-images", "--revision", "v2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"published: {hub.url}/datasets/me/index-images/tree/v2",
        "load it with:",
        "  datasets.load_dataset('me/index-images', split='train', streaming=True, revision='v2')",
        "  python -m train run --data hf://datasets/me/index-images@v2 --mode real --n 50000",
        "  python -m shards fetch hf://datasets/me/index-images@v2",
    ]


def test_missing_token_is_a_clear_error_before_any_work(tmp_path):
    root = build(tmp_path / "ds")
    (root / "data/test-000000.tar").unlink()  # verify would fail: the token is checked before it
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env.update(PYTHONPATH=str(ROOT), HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT="http://127.0.0.1:9")
    proc = subprocess.run(
        [sys.executable, "-m", "shards", "publish", str(root), "--repo", "me/x"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (
        "error: no Hugging Face token: set HF_TOKEN or run `hf auth login` with a token "
        "that can write to the repo, then re-run (nothing was uploaded)"
    )


@pytest.mark.parametrize("when", ["before", "after"])
def test_two_publishes_of_different_datasets_to_one_repo_one_stops_with_one_line(dataset, hub, tmp_path, capsys, when):
    """Another publish runs whole just before our first commit (both read the same head), or just after
    it (it sees no manifest yet, so it passes the another-dataset check): ours is refused either way."""
    other = build(tmp_path / "other", train=450)  # another dataset: 5 train shards where ours has 3
    FakeApi.heads[("me/x", "main")] = "initial"
    FakeApi.hooks[when] = lambda: publish(other, "me/x")
    assert main(["publish", str(dataset), "--repo", "me/x"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: me/x: someone else committed to it while this publish ran (another publish?), so it stopped "
        "before its manifest; check what the repo holds now, then re-run the same command"
    )
    manifests = [folder for _, folder, files in FakeApi.commits if "manifest.json" in files]
    assert manifests == [str(other)]  # only the other dataset's manifest was ever committed, and it is last
    assert hub.repos[("me/x", FakeApi.heads[("me/x", "main")])][0] == other
    with pytest.raises(ShardsError, match="me/x: already holds another dataset"):
        publish(dataset, "me/x")  # a re-run sees the other dataset and refuses (unless --overwrite)


def test_dry_run_reports_an_unreachable_hub_as_a_failed_repo_check(dataset, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_write")
    monkeypatch.setattr(shards.httpio, "BACKOFF_S", 0.01)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    assert main(["publish", str(dataset), "--repo", "me/index-images", "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert "  FAIL  repo: cannot read the repo: " in out and "  ok    verify: " in out
