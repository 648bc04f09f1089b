"""Publishing uploads exactly the publishable files, after verifying; a damaged dataset is refused."""
import huggingface_hub
import pytest

from shards import ShardsError
from shards.remote import publish
from shards_fixtures import build


class FakeApi:
    calls = []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw["repo_id"], kw))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/datasets/{kw['repo_id']}/commit/1"})()


@pytest.fixture
def fake_hub(monkeypatch):
    FakeApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    return FakeApi


def test_publish_uploads_dataset_files_only(tmp_path, fake_hub):
    root = build(tmp_path / "ds")
    url = publish(root, "me/index-images", private=True)
    assert url.endswith("/commit/1")
    (_, repo, create), (_, _, upload) = fake_hub.calls
    assert repo == "me/index-images" and create == {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert upload["folder_path"] == str(root) and upload["repo_type"] == "dataset"
    assert set(upload["allow_patterns"]) == {"README.md", "manifest.json", "_info.json", "data/*", "extras/*"}


def test_publish_refuses_damaged_dataset(tmp_path, fake_hub):
    root = build(tmp_path / "ds")
    (root / "data/test-000000.tar").unlink()
    with pytest.raises(ShardsError, match="verify failed"):
        publish(root, "me/index-images")
    assert fake_hub.calls == []
