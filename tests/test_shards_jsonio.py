"""The toolkit's one JSON helper: atomic writes, tolerant JSON lines, objects that must be objects."""

import os
import stat

import pytest

from shards.errors import ShardsError
from shards.jsonio import (
    append_jsonl,
    atomic_dir,
    atomic_target,
    read_json,
    read_json_object,
    read_jsonl,
    write_json_atomic,
)


def test_atomic_write_leaves_only_the_file(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    write_json_atomic(tmp_path / "a.json", {"b": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert (tmp_path / "a.json").read_text() == '{\n "b": 2\n}\n'


def test_a_torn_last_line_is_dropped_a_bad_middle_line_is_an_error(tmp_path):
    path = tmp_path / "m.jsonl"
    for step in (1, 2):
        append_jsonl(path, {"step": step})
    with open(path, "a") as f:
        f.write('{"step": 3, "err')  # a kill in the middle of an append
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    path.write_text('{"step": 1}\n{"ste\n{"step": 3}\n')
    with pytest.raises(ShardsError, match=r"m.jsonl:2: not valid JSON"):
        read_jsonl(path)
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_read_json_object_names_the_file_the_type_and_the_fix(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("[1, 2]")
    with pytest.raises(ShardsError, match=r"config.json: a JSON list, not a model config; re-save it$"):
        read_json_object(path, fix="re-save it", expected="a model config")
    path.write_text("{bad")
    with pytest.raises(ShardsError, match=r"config.json: not valid JSON \(.*\); re-save it$"):
        read_json(path, fix="re-save it")
    assert read_json_object(tmp_path / "none.json", default={}) == {}


def test_atomic_files_get_the_usual_mode_not_a_private_temp_files(tmp_path):
    """A dataset's manifest and card must stay readable by others (mkstemp would make them 0600)."""
    umask = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "manifest.json", {"a": 1})
        with atomic_target(tmp_path / "part0.npz") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "manifest.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "part0.npz").stat().st_mode) == 0o644
    with pytest.raises(RuntimeError):
        with atomic_target(tmp_path / "manifest.json") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert (tmp_path / "manifest.json").read_text() == '{\n "a": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "part0.npz"]


def test_a_folder_appears_complete_or_not_at_all(tmp_path):
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "weights").write_bytes(b"w")
        assert not (tmp_path / "model").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert (tmp_path / "model" / "weights").read_bytes() == b"w"
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "other") as tmp:
        (tmp / "half").write_bytes(b"h")
        raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_folder_replaces_a_full_one_only_when_asked(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "old").write_text("old")
    with pytest.raises(ShardsError, match="model: exists and is not empty; choose another folder"):
        with atomic_dir(tmp_path / "model") as tmp:
            (tmp / "new").write_text("new")
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["old"]
    with atomic_dir(tmp_path / "model", replace=True) as tmp:
        (tmp / "new").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["new"]
