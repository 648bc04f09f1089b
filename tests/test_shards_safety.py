"""Hostile and damaged input: names from manifests, field types, unsafe tar members, decompression bombs,
wrong image sizes and labels, verify's problem cap."""

import hashlib
import struct
import tarfile
import zlib

import numpy as np
import pytest
from hub_server import FakeHub
from shards_fixtures import CLASSES, build, edit_manifest, rewrite_shard, sample_members, shard_with

from shards import DatasetWriter, ShardsError, load_manifest, load_split, resolve_dataset
from shards.cli import main
from shards.codec import encode_image
from shards.tario import tar_member
from shards.verify import verify_dataset


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG that declares width x height grey pixels: a decompression bomb by its header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


@pytest.fixture
def ds(tmp_path):
    return build(tmp_path / "ds", train=200, test=50)


# --- names from a manifest -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "/etc/passwd",
        "data/../../../x.tar",
        "data/train-000000.tar/../../x.tar",
        "data/test-000000.tar",
        "data/train-0.tar",
        "train-000000.tar",
        "data/train-000000.tar.exe",
    ],
)
def test_manifest_shard_names_outside_the_format_are_refused(ds, name):
    edit_manifest(ds, lambda m: m["splits"]["train"]["shards"][1].update(file=name))
    with pytest.raises(ShardsError) as err:
        load_manifest(ds)
    assert str(err.value) == (
        f"{ds / 'manifest.json'}: splits.train.shards[1].file: shard file {name!r} is not named "
        "data/train-NNNNNN.tar (the only names the format allows; anything else could point outside the "
        "dataset folder); the manifest is damaged or hostile: rebuild or re-download the dataset from a "
        "source you trust"
    )
    assert not verify_dataset(ds).ok


def test_a_hostile_remote_manifest_writes_nothing(tmp_path, monkeypatch):
    hostile = build(tmp_path / "site" / "evil", train=100, test=10)
    escape = tmp_path / "escaped.tar"
    edit_manifest(hostile, lambda m: m["splits"]["train"]["shards"][0].update(file=f"data/../../../../{escape}"))
    (hostile / ".shards" / "created.json").unlink()  # forged: no longer a folder the writer made
    hub = FakeHub().start()
    hub.add("me/evil", hostile)
    hub.endpoint(monkeypatch)
    try:
        with pytest.raises(ShardsError, match="is not named data/train-NNNNNN.tar"):
            resolve_dataset("hf://datasets/me/evil", cache_dir=tmp_path / "cache")
    finally:
        hub.stop()
    assert not escape.exists() and [r["path"].rsplit("/", 1)[-1] for r in hub.requests] == ["manifest.json"]
    assert not list((tmp_path / "cache").rglob("*.tar"))


def test_a_linked_data_folder_outside_the_dataset_is_refused(ds, tmp_path):
    (ds / "data").rename(tmp_path / "elsewhere")
    (ds / "data").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ShardsError, match=r"resolves to .*elsewhere/train-000000.tar, outside the dataset folder"):
        load_split(ds, "train", cache_dir=tmp_path / "c", progress=False)
    assert any("outside the dataset folder" in p for p in verify_dataset(ds).problems)


# --- field types ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "edit, field, expected",
    [
        (
            lambda m: m["splits"]["train"]["shards"][1].update(samples="100"),
            "splits.train.shards[1].samples",
            'expected int>=0, got "100"',
        ),
        (
            lambda m: m["splits"]["train"]["shards"][0].update(sha256=12),
            "splits.train.shards[0].sha256",
            "expected sha256 hex, got 12",
        ),
        (lambda m: m["splits"]["test"].update(count=-1), "splits.test.count", "expected int>=0, got -1"),
        (lambda m: m.update(class_names="cat,dog"), "class_names", 'expected list of str, got "cat,dog"'),
        (lambda m: m.update(image_shape=[8, 8]), "image_shape", "expected null or list of 3 int>=1, got [8, 8]"),
        (lambda m: m.update(samples_per_shard=True), "samples_per_shard", "expected int>=1, got true"),
        (lambda m: m.update(splits=[]), "splits", "expected object, got []"),
    ],
)
def test_malformed_manifest_fields_are_named(ds, edit, field, expected):
    edit_manifest(ds, edit)
    with pytest.raises(ShardsError) as err:
        load_manifest(ds)
    assert str(err.value) == (
        f"{ds / 'manifest.json'}: field {field}: {expected}; the manifest was edited or "
        "damaged: rebuild or re-download the dataset"
    )


def test_missing_and_unknown_manifest_fields_are_named(ds):
    edit_manifest(ds, lambda m: m["splits"]["train"]["shards"][0].pop("first_index"))
    with pytest.raises(ShardsError, match=r"missing field splits.train.shards\[0\].first_index; not a manifest"):
        load_manifest(ds)
    edit_manifest(ds, lambda m: m.update(extra=1))
    with pytest.raises(ShardsError, match="unknown field extra"):
        load_manifest(ds)
    (ds / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ShardsError, match="the manifest must be a JSON object, got list"):
        load_manifest(ds)


# --- shard content ----------------------------------------------------------------------------------------
def test_verify_flags_members_unsafe_to_extract(ds):
    link = tarfile.TarInfo("000000001.lnk")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    members = shard_with(100, 100, {}) + [
        tar_member("/tmp/abs.txt", b"x"),
        tar_member("a/../../up.txt", b"x"),
        link.tobuf(format=tarfile.USTAR_FORMAT),
    ]
    rewrite_shard(ds, "data/train-000001.tar", members)
    report = verify_dataset(ds)
    assert report.problems == [
        "data/train-000001.tar: member '/tmp/abs.txt': absolute name (unsafe to extract)",
        "data/train-000001.tar: member 'a/../../up.txt': name contains '..' (unsafe to extract)",
        "data/train-000001.tar: member '000000001.lnk': is a link (unsafe to extract)",
    ]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL warns, we refuse
def test_decompression_bomb_is_reported_by_verify_and_refused_by_the_cache(ds, tmp_path):
    rewrite_shard(ds, "data/train-000001.tar", shard_with(100, 100, {105: {"image": png_header(30000, 30000)}}))
    report = verify_dataset(ds)  # never raises for bad data
    assert len(report.problems) == 1 and report.problems[0].startswith(
        "data/train-000001.tar: sample 000000105: undecodable image (DecompressionBombError: Image size"
    )
    with pytest.raises(
        ShardsError,
        match=r"train-000001.tar: unreadable shard \(sample 000000105: undecodable "
        r"image \(DecompressionBombError",
    ):
        load_split(ds, "train", cache_dir=tmp_path / "c", progress=False)
    assert not list((tmp_path / "c").iterdir())
    # under PIL's hard limit but far over the manifest's 8x8: refused from the header, before decoding
    rewrite_shard(ds, "data/train-000001.tar", shard_with(100, 100, {105: {"image": png_header(10000, 10000)}}))
    assert verify_dataset(ds).problems == [
        "data/train-000001.tar: sample 000000105: image is 10000x10000, expected 8x8"
    ]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL warns, we refuse
def test_bomb_in_a_dataset_of_mixed_sizes_is_refused_by_the_pixel_limit(tmp_path):
    writer = DatasetWriter(tmp_path / "mixed", {"kind": "mixed"}, CLASSES, {"train": 4}, 2)
    writer.prepare()
    for spec, size in zip(writer.pending(), (8, 12)):
        writer.write_shard(spec, [{"image": np.zeros((size, size, 3), np.uint8), "cls": 1}] * 2)
    root = tmp_path / "mixed"
    assert writer.finalize().image_shape is None
    fine = encode_image(np.zeros((12, 12, 3), np.uint8), "png")
    rewrite_shard(
        root,
        "data/train-000001.tar",
        [*sample_members(2, png_header(12000, 9000), 1, b"{}"), *sample_members(3, fine, 1, b"{}")],
    )
    assert verify_dataset(root).problems == [
        "data/train-000001.tar: sample 000000002: image of 12000x9000 "
        "pixels: over the decompression-bomb limit of 89,478,485"
    ]
    with pytest.raises(ShardsError, match="sample 000000002: image of 12000x9000 pixels"):
        load_split(root, "train", size=8, cache_dir=tmp_path / "c", progress=False)


def test_cache_names_the_shard_and_key_of_a_wrong_size_or_label(ds, tmp_path):
    wrong_size = encode_image(np.zeros((9, 8, 3), np.uint8), "png")
    rewrite_shard(ds, "data/train-000000.tar", shard_with(0, 100, {42: {"image": wrong_size}}))
    with pytest.raises(
        ShardsError,
        match=r"train-000000.tar: unreadable shard \(sample 000000042: image is 9x8, "
        r"expected 8x8\)",
    ):
        load_split(ds, "train", cache_dir=tmp_path / "c", progress=False)
    rewrite_shard(ds, "data/train-000000.tar", shard_with(0, 100, {7: {"cls": 10}}))
    with pytest.raises(
        ShardsError,
        match=r"train-000000.tar: sample 000000007: label 10 outside \[0, 10\), the "
        r"manifest's classes",
    ):
        load_split(ds, "train", cache_dir=tmp_path / "c", progress=False)
    assert not list((tmp_path / "c").iterdir()), "no cache (nor temporary file) may be left from bad data"


def test_verify_counts_the_problems_past_its_cap(ds, capsys):
    bad = {i: {"cls": 10 + i % 3} for i in range(3, 18)}  # 15 labels out of range
    rewrite_shard(ds, "data/train-000000.tar", shard_with(0, 100, bad))
    report = verify_dataset(ds)
    problems = report.problems
    # 15 bad labels + the shard's label counts, which no longer match the manifest's: 16 in all
    assert report.problem_count == 16
    assert len(problems) == 11 and problems[-1] == "data/train-000000.tar: 6 more problems"
    assert problems[0] == "data/train-000000.tar: sample 000000003 has label 10, outside [0, 10)"
    assert sum(p.startswith("data/train-000000.tar: sample") for p in problems) == 10
    assert main(["verify", str(ds)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == f"FAILED (16 problems): {ds}: 3 shards, 250 samples checked"


def test_a_truncated_tar_is_reported_not_raised(ds):
    members = shard_with(100, 100, {})
    data = b"".join(members)[:5000]
    (ds / "data/train-000001.tar").write_bytes(data)
    edit_manifest(
        ds, lambda m: m["splits"]["train"]["shards"][1].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    )
    problems = verify_dataset(ds).problems
    assert len(problems) == 1 and problems[0].startswith(
        "data/train-000001.tar: unreadable tar: data/train-000001.tar: truncated member"
    )


def test_a_stats_file_naming_another_file_cannot_steer_the_manifest(tmp_path):
    from shards_fixtures import index_samples, make_writer

    root = build(tmp_path / "ds", train=200, test=50)
    stats = root / ".shards/train-000001.json"
    stats.write_text(stats.read_text().replace('"data/train-000001.tar"', '"data/../../../x.tar"'))
    writer = make_writer(root, train=200, test=50)
    writer.prepare()
    assert [s.relpath for s in writer.pending()] == ["data/train-000001.tar"]  # not trusted: made again
    for spec in writer.pending():
        writer.write_shard(spec, index_samples(spec))
    assert [e.file for e in writer.finalize().splits["train"].shards] == [
        "data/train-000000.tar",
        "data/train-000001.tar",
    ]
