"""The dataset card: YAML that HF's own readers parse with every user-given name intact, licence fields."""

import subprocess
import sys
from pathlib import Path

import pytest
from shards_fixtures import index_samples

from shards import DatasetWriter, ShardsError
from shards.card import CardInfo, License, declared_license

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ("@src", "weird: v2 #1", 'it\'s "quoted"', "two\nlines", "- dash", "{curly}", "yes", "null", "0123")


def build_hostile(out: Path, card: CardInfo) -> Path:
    writer = DatasetWriter(
        out,
        config={"kind": "index-images", "seed": 0},
        class_names=list(HOSTILE),
        splits={"train": 12, "test": 6},
        samples_per_shard=4,
        card=card,
    )
    writer.prepare()
    for spec in writer.pending():
        writer.write_shard(spec, ({**s, "cls": s["cls"] % len(HOSTILE)} for s in index_samples(spec)))
    writer.finalize()
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    card = CardInfo(
        pretty_name='a "pretty": name #1',
        source_datasets=HOSTILE,
        license="other",
        license_name="my-terms: v1",
        license_link="https://example.org/terms#1",
    )
    return build_hostile(tmp_path_factory.mktemp("card") / "ds", card)


def test_datasetcard_load_reads_every_hostile_name_intact(hostile):
    from huggingface_hub import DatasetCard

    data = DatasetCard.load(hostile / "README.md").data.to_dict()
    assert data["source_datasets"] == list(HOSTILE)
    assert data["pretty_name"] == 'a "pretty": name #1'
    assert (data["license"], data["license_name"], data["license_link"]) == (
        "other",
        "my-terms: v1",
        "https://example.org/terms#1",
    )
    names = data["dataset_info"]["features"][1]["dtype"]["class_label"]["names"]
    assert names == {str(i): name for i, name in enumerate(HOSTILE)}


def test_load_dataset_reads_the_card_with_class_names_and_every_sample(hostile, tmp_path):
    # In a subprocess with its own HF cache: `datasets` writes its cache and must not see the network.
    code = (
        "import datasets, json, sys; d = datasets.load_dataset(sys.argv[1]); "
        "print(json.dumps([d['train'].features['cls'].names, d.num_rows, sorted(d['test']['cls'])]))"
    )
    env = {
        "HF_HOME": str(tmp_path / "hf"),
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-c", code, str(hostile)], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    names, rows, test_labels = json.loads(out.stdout.strip().splitlines()[-1])
    assert names == list(HOSTILE)
    assert rows == {"train": 12, "test": 6}
    assert test_labels == sorted((i * 7) % 10 % len(HOSTILE) for i in range(6))


def test_the_card_states_its_licence_in_yaml_and_body(hostile):
    text = (hostile / "README.md").read_text()
    assert "Licence: [my-terms: v1](https://example.org/terms#1)." in text


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"license": "other"}, "--license other: needs --license-name"),
        ({"license": "other", "license_name": "x"}, "--license other: needs --license-name"),
        ({"license": "gpl-ish"}, "--license 'gpl-ish': not one of"),
    ],
)
def test_an_incomplete_or_unknown_licence_is_refused(kw, message):
    with pytest.raises(ShardsError, match=message):
        CardInfo(**kw)
    with pytest.raises(ShardsError, match=message):
        License(kw["license"], kw.get("license_name", ""))


def test_import_cli_refuses_other_without_its_name_and_link(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "shards", "import", str(tmp_path), "--out", str(tmp_path / "o"), "--license", "other"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: --license other: needs --license-name")
    assert not (tmp_path / "o").exists()


def test_declared_license_reads_a_model_folders_card(tmp_path):
    (tmp_path / "README.md").write_text("---\nlicense: apache-2.0\ntags: [x]\n---\n# model\n")
    assert declared_license(tmp_path) == "apache-2.0"
    (tmp_path / "README.md").write_text("# no front matter\n")
    assert declared_license(tmp_path) == "not stated in its README.md"
