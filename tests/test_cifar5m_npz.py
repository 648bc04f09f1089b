"""`import-npz` / `export-npz`: released-CIFAR-5m-style parts made in tmp_path (rows encode their index)."""

from __future__ import annotations

import numpy as np
import pytest
from cifar5m_fixtures import make_part

from cifar5m.cli import main
from cifar5m.npz import CHUNK_ROWS, iter_rows, open_part
from shards import iter_samples, load_manifest


@pytest.fixture
def parts(tmp_path):
    sizes = [7, 5, 9]
    paths, arrays = [], []
    for k, n in enumerate(sizes):
        paths.append(tmp_path / f"part{k}.npz")
        arrays.append(make_part(paths[-1], n, k))
    return paths, arrays


def fingerprint(out):
    """Every shard's bytes and the manifest (whose config names the part files, so kept apart)."""
    return {
        "data": {p.name: p.read_bytes() for p in sorted((out / "data").glob("*.tar"))},
        "manifest": (out / "manifest.json").read_bytes(),
    }


def read_split(out, split):
    m = load_manifest(out)
    return list(iter_samples(out / f for f in m.splits[split].shard_files()))


def test_import_keeps_the_paper_split_pixels_labels_and_provenance(parts, tmp_path):
    paths, arrays = parts
    out = tmp_path / "ds"
    assert (
        main(
            [
                "import-npz",
                *map(str, paths),
                "--out",
                str(out),
                "--test-rows",
                "4",
                "--shard-size",
                "5",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    m = load_manifest(out)
    assert {s: i.count for s, i in m.splits.items()} == {"train": 12, "test": 4}  # parts 0-1, 4 rows of part 2
    assert m.class_names[0] == "airplane" and len(m.class_names) == 10
    train = read_split(out, "train")
    assert [(meta["part"], meta["row"]) for *_, meta in train] == [(0, r) for r in range(7)] + [
        (1, r) for r in range(5)
    ]
    for _, image, cls, meta in train + read_split(out, "test"):
        x, y = arrays[meta["part"]]
        np.testing.assert_array_equal(image, x[meta["row"]])
        assert cls == y[meta["row"]]


def test_import_then_export_round_trips_the_arrays_exactly(parts, tmp_path):
    paths, arrays = parts
    out, back = tmp_path / "ds", tmp_path / "back"
    assert (
        main(["import-npz", *map(str, paths), "--out", str(out), "--full-test", "--shard-size", "4", "--workers", "2"])
        == 0
    )
    assert main(["export-npz", str(out), "--out", str(back)]) == 0
    assert sorted(p.name for p in back.iterdir()) == ["part0.npz", "part1.npz", "part2.npz"]
    for k, (x, y) in enumerate(arrays):
        with np.load(back / f"part{k}.npz") as loaded:
            assert loaded["X"].dtype == np.uint8 and loaded["Y"].dtype == y.dtype
            np.testing.assert_array_equal(loaded["X"], x)
            np.testing.assert_array_equal(loaded["Y"], y)
    first = (back / "part0.npz").read_bytes()
    assert main(["export-npz", str(out), "--out", str(back)]) == 2  # refuses to replace files
    assert main(["export-npz", str(out), "--out", str(back), "--overwrite"]) == 0
    assert (back / "part0.npz").read_bytes() == first  # fixed zip member times: same bytes


def test_import_resumes_to_the_same_bytes_with_any_worker_count(parts, tmp_path):
    paths, _ = parts
    args = [*map(str, paths), "--test-rows", "4", "--shard-size", "3"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["import-npz", *args, "--out", str(a), "--workers", "1"]) == 0
    assert main(["import-npz", *args, "--out", str(b), "--workers", "2"]) == 0
    assert fingerprint(a) == fingerprint(b)
    (b / "data" / "train-000002.tar").unlink()
    (b / "manifest.json").unlink()
    assert main(["import-npz", *args, "--out", str(b), "--workers", "1"]) == 0
    assert fingerprint(a) == fingerprint(b)


def test_compressed_parts_import_to_the_same_bytes(parts, tmp_path):
    """np.savez_compressed parts have no file offset for X: rows come out of the zip stream instead."""
    paths, arrays = parts
    squeezed = []
    for k, (x, y) in enumerate(arrays):
        squeezed.append(tmp_path / f"z{k}.npz")
        np.savez_compressed(squeezed[-1], X=x, Y=y)
    assert open_part(squeezed[0]).x_offset is None and open_part(paths[0]).x_offset is not None
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["import-npz", *map(str, paths), "--out", str(a), "--shard-size", "3", "--workers", "1"]) == 0
    assert main(["import-npz", *map(str, squeezed), "--out", str(b), "--shard-size", "3", "--workers", "1"]) == 0
    assert fingerprint(a)["data"] == fingerprint(b)["data"]


def test_rows_stream_in_chunks_across_chunk_boundaries(tmp_path):
    x, _ = make_part(tmp_path / "big.npz", CHUNK_ROWS + 3, 0)
    part = open_part(tmp_path / "big.npz")
    chunks = list(iter_rows(part, 2, CHUNK_ROWS + 3, chunk_rows=CHUNK_ROWS // 2))
    assert [len(c) for c in chunks] == [CHUNK_ROWS // 2, CHUNK_ROWS // 2, 1]
    np.testing.assert_array_equal(np.concatenate(chunks), x[2:])


GOOD_X, GOOD_Y = np.zeros((3, 32, 32, 3), np.uint8), np.array([1, 2, 3])


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"images": GOOD_X, "labels": GOOD_Y}, "holds arrays images, labels; a CIFAR-5m part holds X (images) and Y"),
        ({"X": GOOD_X.astype(np.float32), "Y": GOOD_Y}, "X is float32 (3, 32, 32, 3); must be uint8 (N, 32, 32, 3)"),
        ({"X": GOOD_X[:, :28, :28, 0], "Y": GOOD_Y}, "X is uint8 (3, 28, 28); must be uint8 (N, 32, 32, 3)"),
        ({"X": GOOD_X, "Y": GOOD_Y.astype(float)}, "Y is float64 (3,); must be integer labels of shape (N,)"),
        ({"X": GOOD_X, "Y": GOOD_Y[:2]}, "X has 3 rows but Y has 2; the file is damaged"),
        ({"X": GOOD_X, "Y": np.array([1, 10, 2])}, "Y[1] = 10, labels must be in [0, 10) (1 rows are not)"),
    ],
)
def test_bad_parts_are_one_line_errors_naming_the_file(tmp_path, capsys, arrays, message):
    good, bad = tmp_path / "part0.npz", tmp_path / "part1.npz"
    make_part(good, 3, 0)
    np.savez(bad, **arrays)
    out = tmp_path / "ds"
    assert main(["import-npz", str(good), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_one_part_or_a_missing_file_is_refused(parts, tmp_path, capsys):
    paths, _ = parts
    assert main(["import-npz", str(paths[0]), "--out", str(tmp_path / "ds")]) == 2
    assert "give at least two" in capsys.readouterr().err
    assert main(["import-npz", str(paths[0]), str(tmp_path / "part9.npz"), "--out", str(tmp_path / "ds")]) == 2
    assert "part9.npz: no such file" in capsys.readouterr().err


def test_a_y_header_that_claims_more_rows_than_stored_is_one_line(tmp_path, capsys):
    import io
    import zipfile

    good, bad = tmp_path / "part0.npz", tmp_path / "part1.npz"
    make_part(good, 3, 0)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False, "shape": (5,)})
    x = io.BytesIO()
    np.lib.format.write_array(x, GOOD_X)
    with zipfile.ZipFile(bad, "w") as zf:  # Y's header says 5 labels; 3 are stored
        zf.writestr("X.npy", x.getvalue())
        zf.writestr("Y.npy", header.getvalue() + GOOD_Y.astype("<i8").tobytes())
    assert main(["import-npz", str(good), str(bad), "--out", str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: {bad}: Y's header says 5 labels but the file holds fewer (")
        and err.endswith("the file is damaged: download it again\n")
        and err.count("\n") == 1
    )
    assert not (tmp_path / "ds").exists()


def test_export_of_a_dataset_without_a_train_split_is_one_line(tmp_path, capsys):
    from shards import DatasetWriter

    writer = DatasetWriter(tmp_path / "ds", {"kind": "test-only"}, [f"c{i}" for i in range(10)], {"test": 4}, 4)
    writer.prepare()
    for spec in writer.pending():
        writer.write_shard(spec, ({"image": GOOD_X[0], "cls": i} for i in range(4)))
    writer.finalize()
    assert main(["export-npz", str(tmp_path / "ds"), "--out", str(tmp_path / "parts")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: {tmp_path / 'ds'}: no train split (splits: test); CIFAR-5m parts hold the train split, then the "
        "test split in the last part"
    )
    assert not (tmp_path / "parts").exists()
