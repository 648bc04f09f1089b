"""Per-example test outputs kept in a run folder: round trip, missing steps, and a fresh start's cleanup."""

import numpy as np

from train.run import test_outputs


def test_save_load_and_clear(tmp_path):
    rng = np.random.default_rng(0)
    values = {step: rng.uniform(0, 1, (3, 7)) for step in (0, 10, 20)}
    for step, v in values.items():
        test_outputs.save(tmp_path, step, v)
    assert test_outputs.saved_steps(tmp_path) == [0, 10, 20]
    soft = test_outputs.load(tmp_path, [10, 20], "soft_error")
    # float16 keeps about 3 significant digits
    np.testing.assert_allclose(soft, np.stack([values[10][1], values[20][1]]), rtol=1e-3, atol=1e-4)
    assert test_outputs.load(tmp_path, [10, 30], "error") is None  # a step not kept: no partial answer
    (tmp_path / test_outputs.DIR / "mine.txt").write_text("a user's file")
    test_outputs.clear(tmp_path)
    assert test_outputs.saved_steps(tmp_path) == []
    assert (tmp_path / test_outputs.DIR / "mine.txt").is_file()  # only the run's own files go
    assert not list((tmp_path / test_outputs.DIR).glob(".*.tmp"))  # atomic writes leave no temporary file
