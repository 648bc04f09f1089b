"""Released-CIFAR-5m-style npz parts whose rows encode their index (for tests)."""

from __future__ import annotations

import numpy as np


def make_part(path, rows: int, part: int) -> tuple[np.ndarray, np.ndarray]:
    """X whose pixels encode (part, row), Y = (row * 3 + part) % 10, saved as np.savez does."""
    r = np.arange(rows)
    x = np.zeros((rows, 32, 32, 3), np.uint8)
    x[:, :, :, 0] = (r % 256)[:, None, None]
    x[:, :, :, 1] = (r // 256)[:, None, None]
    x[:, :, :, 2] = part
    x[:, 5, 7, :] = 200  # some structure inside the image too
    y = ((r * 3 + part) % 10).astype(np.int64)
    np.savez(path, X=x, Y=y)
    return x, y
