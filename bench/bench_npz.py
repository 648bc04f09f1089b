"""Reading a released-size CIFAR-5m part: peak memory and rows/s, ours (chunked) against `np.load`.

    python bench/bench_npz.py [--rows 1000448] [--import-rows 30000] [--dir /tmp/npz-bench]

Makes a part of `--rows` 32x32x3 images (the released parts hold 1,000,448; written with our streaming
writer, so making it needs little memory), then each measurement runs in a fresh process so its peak
resident memory (VmHWM) is its own:
  baseline: `np.load(part)["X"]` then one pass over its rows (reads the whole array into memory)
  ours:     `cifar5m.npz.iter_rows`, chunks of 4,096 rows straight out of the zip member
  import:   `import-npz` end to end on a part of `--import-rows` rows (PNG encoding + shard writing),
            with 1 and with `--workers` processes
Target: peak resident memory < 1 GB per part.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def make_part(path: Path, rows: int, seed: int = 0) -> None:
    """A part whose images cycle through 4,096 CIFAR-like ones (smooth + noise: they PNG-encode like real
    32x32 images, which matters for the import timing; reading speed does not depend on content)."""
    from bench_shards import cifar_like_images

    from cifar5m.npz import write_npz_part

    rng = np.random.default_rng(seed)
    pool = cifar_like_images(4096, seed)
    write_npz_part(path, (pool[i % len(pool)] for i in range(rows)), rng.integers(0, 10, rows), "int64")


def peak_rss_mb() -> float:
    """This process image's peak resident memory (VmHWM). Not ru_maxrss: Linux carries that over fork and
    exec from the parent, which here has just made a big part."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(mode: str, path: str, out: str) -> dict:
    """Run inside the child process: one pass over the part's rows."""
    start = time.perf_counter()
    checksum = 0
    if mode == "np.load":
        x = np.load(path)["X"]
        for first in range(0, len(x), 4096):
            checksum += int(x[first : first + 4096, 0, 0, 0].sum())
        rows = len(x)
    elif mode == "ours":
        from cifar5m.npz import iter_rows, open_part

        part = open_part(path)
        for chunk in iter_rows(part, 0, part.rows):
            checksum += int(chunk[:, 0, 0, 0].sum())
        rows = part.rows
    else:  # import-W: import-npz end to end with W worker processes
        from cifar5m.npz import import_npz, open_part

        rows = open_part(path).rows
        import_npz([path, path], out, test_rows=0, workers=int(mode.split("-")[1]))  # test split empty
    wall = time.perf_counter() - start
    peak_mb = peak_rss_mb()
    return {
        "mode": mode,
        "rows": rows,
        "wall_s": round(wall, 2),
        "rows_per_s": round(rows / wall),
        "peak_rss_mb": round(peak_mb),
        "checksum": checksum,
    }


def run_child(mode: str, path: Path, out: Path) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), str(out)], check=True, capture_output=True, text=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_448)
    parser.add_argument("--import-rows", type=int, default=40_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="for the parallel import")
    parser.add_argument("--dir", help="scratch folder (default: a temporary one)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        make_part(tmp / "part0.npz", args.rows)
        print(
            f"made a {args.rows:,}-row part ({(tmp / 'part0.npz').stat().st_size / 1e9:.2f} GB) "
            f"in {time.perf_counter() - start:.1f} s"
        )
        base = run_child("np.load", tmp / "part0.npz", tmp / "unused")
        ours = run_child("ours", tmp / "part0.npz", tmp / "unused")
        assert base["checksum"] == ours["checksum"], "the two readers disagree"
        for r in (base, ours):
            print(f"{r['mode']:>8}: {r['rows_per_s']:>10,} rows/s, peak RSS {r['peak_rss_mb']:>6,} MB, {r['wall_s']} s")
        print(
            f"ours / np.load: speed {ours['rows_per_s'] / base['rows_per_s']:.2f}x, "
            f"peak memory {ours['peak_rss_mb'] / base['peak_rss_mb']:.3f}x"
        )
        make_part(tmp / "small.npz", args.import_rows, seed=1)
        one = run_child("import-1", tmp / "small.npz", tmp / "ds1")
        many = run_child(f"import-{args.workers}", tmp / "small.npz", tmp / "ds")
        for r, workers in ((one, 1), (many, args.workers)):
            print(
                f"import-npz end to end ({r['rows']:,} rows, {workers} worker(s)): {r['rows_per_s']:,} rows/s, "
                f"peak RSS of the main process {r['peak_rss_mb']:,} MB"
            )
        print(f"{args.workers} workers / 1: {many['rows_per_s'] / one['rows_per_s']:.2f}x")


if __name__ == "__main__":
    main()
