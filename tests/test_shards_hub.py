"""The Hub round trip against a fake Hub on 127.0.0.1: hf:// streams, downloads, verify, retries, errors."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hub_server import FakeHub
from shards_fixtures import build, index_image, label_of
from train_fixtures import build_dataset

import shards.httpio
from shards import ShardsError, iter_shard, load_manifest, load_split, resolve_dataset
from shards.cachedir import CACHE_ENV
from shards.cli import main
from shards.verify import verify_dataset

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_test_token"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return build(tmp_path_factory.mktemp("hub") / "tiny", train=300, test=100)


@pytest.fixture
def hub(dataset, monkeypatch, tmp_path):
    hub = FakeHub().start()
    hub.add("me/tiny", dataset)
    hub.endpoint(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(shards.httpio, "BACKOFF_S", 0.01)
    yield hub
    hub.stop()


def test_hf_dataset_streams_shard_by_shard_with_the_token(hub, dataset):
    manifest = load_manifest("hf://datasets/me/tiny")
    assert manifest.to_dict() == load_manifest(dataset).to_dict()
    samples = list(iter_shard("hf://datasets/me/tiny/data/train-000001.tar"))
    assert [int(k) for k, *_ in samples] == list(range(100, 200))
    assert all(np.array_equal(image, index_image(int(k))) and cls == label_of(int(k)) for k, image, cls, _ in samples)
    # nothing but the manifest and the one shard was read: no snapshot of the dataset first
    assert [r["path"] for r in hub.requests] == [
        "/datasets/me/tiny/resolve/main/manifest.json",
        "/datasets/me/tiny/resolve/main/data/train-000001.tar",
    ]
    assert {r["auth"] for r in hub.requests} == {f"Bearer {TOKEN}"}


def test_revision_is_read_from_the_url(hub, dataset, tmp_path):
    other = build(tmp_path / "v1", train=100, test=100)
    hub.add("me/tiny", other, revision="v1")
    assert load_manifest("hf://datasets/me/tiny@v1").splits["train"].count == 100
    assert load_manifest("hf://datasets/me/tiny").splits["train"].count == 300


def test_download_is_verified_and_survives_a_500_and_a_reset(hub, dataset, tmp_path):
    hub.script("data/train-000001.tar", 500)
    hub.script("data/train-000002.tar", "reset")
    local = resolve_dataset("hf://datasets/me/tiny", cache_dir=tmp_path / "cache")
    for entry in load_manifest(dataset).splits["train"].shards:
        assert (local / entry.file).read_bytes() == (dataset / entry.file).read_bytes()
    assert hub.served("data/train-000001.tar") == 2  # the 500, then the retry
    resumed = [r for r in hub.requests if r["path"].endswith("train-000002.tar")]
    assert [r["range"] is not None for r in resumed] == [False, True]  # resumed where the connection broke
    arrays = load_split(local, "test", progress=False)
    assert arrays.labels.tolist() == [label_of(i) for i in range(100)]
    assert not list(local.rglob("*.part")), "no partial downloads may be left"


def test_verify_reads_through_hf(hub, dataset):
    report = verify_dataset("hf://datasets/me/tiny")
    assert report.ok and report.shards_checked == 4 and report.samples_checked == 400
    hub.script("data/test-000000.tar", 404)
    report = verify_dataset("hf://datasets/me/tiny")
    assert len(report.problems) == 1
    assert report.problems[0].startswith(
        "data/test-000000.tar: cannot read: hf://datasets/me/tiny/data/test-000000.tar ("
    )
    assert "HTTP 404 Not Found: not found; check the repo id or URL, the revision (@REV)" in report.problems[0]


def test_a_missing_shard_is_one_clear_error_and_leaves_no_files(hub, dataset, tmp_path):
    hub.script("data/train-000002.tar", 404)
    with pytest.raises(ShardsError) as err:
        resolve_dataset("hf://datasets/me/tiny", cache_dir=tmp_path / "cache")
    assert str(err.value).startswith(
        f"hf://datasets/me/tiny/data/train-000002.tar ({hub.url}/datasets/me/tiny/"
        "resolve/main/data/train-000002.tar): HTTP 404 Not Found: not found"
    )
    assert not list((tmp_path / "cache").rglob("*.part")) and not list((tmp_path / "cache").rglob("manifest.json"))


def test_persistent_5xx_gives_up_with_the_count(hub):
    hub.script("manifest.json", *[503] * shards.httpio.ATTEMPTS)
    with pytest.raises(
        ShardsError,
        match=r"manifest.json \(.*\): HTTP 503 .*\(5 tries\); check the URL and the "
        "network, then re-run",
    ):
        load_manifest("hf://datasets/me/tiny")


def test_private_repo_without_token_says_what_to_do(hub, dataset, monkeypatch):
    hub.add("me/private", dataset, token="hf_secret")
    with pytest.raises(ShardsError, match="HTTP 401 Unauthorized: not authorised; .*set HF_TOKEN"):
        load_manifest("hf://datasets/me/private")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert load_manifest("hf://datasets/me/private").splits["train"].count == 300


def test_token_is_not_sent_to_another_host_on_redirect(hub, dataset):
    # the Hub redirects big files to its CDN: another host must not see the token
    hub.redirect(
        "data/test-000000.tar",
        f"http://localhost:{hub.server.server_port}/datasets/me/tiny/resolve/main/data/test-000000.tar",
    )
    assert len(list(iter_shard("hf://datasets/me/tiny/data/test-000000.tar"))) == 100
    first, second = [r for r in hub.requests if r["path"].endswith("test-000000.tar")]
    assert first["auth"] == f"Bearer {TOKEN}" and second["auth"] is None and second["host"].startswith("localhost")


def test_bad_hf_urls_are_refused():
    for url in ("hf://me/tiny", "hf://datasets/", "hf://datasets/me"):
        with pytest.raises(ShardsError, match="expected hf://datasets/ORG/NAME"):
            load_manifest(url)


@pytest.mark.parametrize(
    "url, part",
    [
        ("hf://datasets/me/x?y=1", "x?y=1"),
        ("hf://datasets/-me/x", "-me"),
        ("hf://datasets/me/x..y", "x..y"),
        ("hf://datasets/me/x--y@main", "x--y"),
    ],
)
def test_hf_urls_with_names_the_hub_forbids_are_one_line_everywhere(url, part, capsys, tmp_path):
    """Was: huggingface_hub's HFValidationError traceback, also out of verify (documented as never raising)."""
    message = f"{url}: {part!r} is not a Hub repo name"
    with pytest.raises(ShardsError, match=re.escape(message)):
        load_manifest(url)
    assert verify_dataset(url).problems[0].startswith(message)
    assert main(["fetch", url]) == 2 and capsys.readouterr().err.startswith(f"error: {message}")
    assert main(["verify", url]) == 1 and f"FAIL {message}" in capsys.readouterr().out


def _env(hub, tmp_path):
    """A subprocess's environment: huggingface_hub reads HF_ENDPOINT at import, so it is set before it starts."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": TOKEN,
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
    }
    env.pop(CACHE_ENV, None)  # the user cache then follows XDG_CACHE_HOME
    return env


@pytest.mark.parametrize("data_path", ["stream", "memory"])
def test_trainer_reads_through_hf(hub, tmp_path, data_path):
    hub.add("me/templates", build_dataset(tmp_path / "templates", train=200, test=100))
    hub.script("data/train-000001.tar", 500)  # retried, in the trainer's own process
    env = _env(hub, tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "train",
            "run",
            "--data",
            "hf://datasets/me/templates",
            "--data-path",
            data_path,
            "--mode",
            "real",
            "--n",
            "100",
            "--steps",
            "10",
            "--batch-size",
            "20",
            "--model",
            "mlp",
            "--mlp-widths",
            "16",
            "--device",
            "cpu",
            "--eval-schedule",
            "every:5",
            "--eval-train-samples",
            "20",
            "--num-workers",
            "1",
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "run/summary.json").is_file()
    assert hub.served("data/train-000001.tar") >= 2
    downloaded = list((tmp_path / "xdg").rglob("train-000000.tar"))
    assert bool(downloaded) == (data_path == "memory")  # streaming reads the shards where they are


def test_fetch_cli_names_the_url_on_404(hub, tmp_path):
    env = _env(hub, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "shards", "fetch", "hf://datasets/me/absent"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip().splitlines()[-1].startswith("error: hf://datasets/me/absent/manifest.json (")
        and "HTTP 404" in proc.stderr
    )


def test_trainer_streaming_a_shard_that_answers_404_stops_with_one_line(hub, tmp_path):

    hub.add("me/templates", build_dataset(tmp_path / "templates", train=200, test=100))
    hub.script("data/train-000001.tar", *[404] * 10)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "train",
            "run",
            "--data",
            "hf://datasets/me/templates",
            "--data-path",
            "stream",
            "--mode",
            "ideal",
            "--steps",
            "8",
            "--batch-size",
            "20",
            "--model",
            "mlp",
            "--mlp-widths",
            "16",
            "--device",
            "cpu",
            "--eval-schedule",
            "every:4",
            "--eval-train-samples",
            "20",
            "--num-workers",
            "1",
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ],
        cwd=ROOT,
        env=_env(hub, tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    # the error is raised in a DataLoader worker: torch re-raises it with the worker's traceback inside
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: hf://datasets/me/templates/data/train-000001.tar ({hub.url}/datasets/me/templates/resolve/main/"
        "data/train-000001.tar): HTTP 404 Not Found: not found; check the repo id or URL, the revision (@REV) "
        "and that the dataset was published completely"
    )
