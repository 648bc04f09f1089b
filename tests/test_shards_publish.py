"""Publishing: verify first, shards before card and manifest, a dry run, another dataset refused unless
forced, a missing token refused before any work, and the URL and loading lines at the end."""
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
from hub_server import FakeHub
from shards_fixtures import build, index_samples, make_writer

from shards import ShardsError
from shards.cli import main
from shards.remote import publish

ROOT = Path(__file__).resolve().parents[1]
LAST = ["_info.json", "README.md", "manifest.json"]


class FakeApi:
    calls = []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw["repo_id"], kw))


@pytest.fixture
def hub(monkeypatch):
    """The Hub's API faked (uploads recorded), its file server on 127.0.0.1, and a token."""
    FakeApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "hf_write")
    server = FakeHub().start()
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
    # the repo was asked for its manifest first: there was none (a new repo)
    assert [r["path"] for r in hub.requests] == ["/datasets/me/index-images/resolve/main/manifest.json"]


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
    hub.add("me/index-images", tmp_path / "other")
    with pytest.raises(ShardsError, match=r"me/index-images: already holds another dataset \(config hash "
                                          r"[0-9a-f]{12}\.\.\., yours [0-9a-f]{12}\.\.\.\); publish to another "
                                          "repo, or pass --overwrite to replace it"):
        publish(dataset, "me/index-images")
    assert FakeApi.calls == []
    publish(dataset, "me/index-images", force=True)
    first = FakeApi.calls[1][2]
    # only the old dataset's shards that the new one lacks are deleted
    assert first["delete_patterns"] == ["data/train-000003.tar", "data/train-000004.tar"]


def test_republishing_the_same_dataset_resumes(dataset, hub):
    hub.add("me/index-images", dataset)
    publish(dataset, "me/index-images")
    assert len(FakeApi.calls) == 3 and FakeApi.calls[1][2]["delete_patterns"] is None


def test_dry_run_prints_the_plan_and_the_card_and_uploads_nothing(dataset, hub, capsys, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")  # a dry run needs no token
    assert main(["publish", str(dataset), "--repo", "me/index-images", "--dry-run"]) == 0
    out = capsys.readouterr().out
    listed = [line.split(". ", 1)[1] for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert listed == shard_files(dataset) + LAST
    assert out.startswith(f"dry run: would upload {len(listed)} files to {hub.url}/datasets/me/index-images")
    assert (dataset / "README.md").read_text() in out
    assert FakeApi.calls == [] and hub.requests == []


def test_cli_ends_with_the_url_and_loading_lines(dataset, hub, capsys):
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
    proc = subprocess.run([sys.executable, "-m", "shards", "publish", str(root), "--repo", "me/x"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == ("error: no Hugging Face token: set HF_TOKEN or run `hf auth login` with a token "
                                   "that can write to the repo, then re-run (nothing was uploaded)")
