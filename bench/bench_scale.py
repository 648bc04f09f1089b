"""How the toolkit's costs grow from 10K to 1M samples, projected to CIFAR-5m's 6M.

    python bench/bench_scale.py [--sizes 10000,100000,1000000] [--root DIR] [--json FILE]

For each size N a dataset of N train + 1,000 test 32x32 RGB samples is written (shards of 10,000, as
CIFAR-5m's), then every operation below runs in its own process, so its wall time and peak resident memory
(`ru_maxrss` of that process, from os.wait4) are its own:

  write        shards.DatasetWriter, N samples (PNG bytes prepared beforehand, see below)
  verify       `python -m shards verify` (re-hash, count and decode every shard)
  info         `python -m shards info`
  manifest     load the manifest and render the dataset card
  cache        build the decoded cache of the train split (shards.load_split)
  open         open the dataset for training, shards verified (train.data.datasets.open_dataset)
  ideal-ledger the Ideal World's sampler and ledger over the whole pool (every index drawn and recorded)
  real-subset  the Real World's subset of n = N / 10 and one epoch of its order
  data-100     100 batches of 64 through the run's data path (cached pool, no model)
  train-100    `python -m train run`: 100 steps of mcnn (width 16), end to end (Ideal World, decoded cache reused)
  stream-100   the same 100 steps streamed from a local HTTP server (127.0.0.1, `--data-path stream`)
  publish-dry  `python -m shards publish --dry-run` (no network: a dummy token, an unreachable endpoint)
  resume-90    a writer killed (SIGKILL) once 90% of its shards are committed, then re-run: the re-run's cost
  sweep-plan   `python -m train sweep --dry-run` over 4 n x 3 seeds

The table gives per-sample cost, the growth exponent b of time and of memory (least squares of
log cost on log N over the sizes) and the projection to 6,002,688 samples (cost at the largest size x
(6M / N)^b). A time exponent over 1.15, or a projected peak over 24 GB (the development host), is flagged.

The PNGs: 4,096 CIFAR-like images (smooth random fields plus mild noise, as bench_shards.py makes them,
~2.5-3 KB each like CIFAR-10's PNGs) are encoded once and written round-robin, so `write` measures the
writer (tar, hashing, commits) rather than N PNG encodings; PNG encoding costs ~0.5 ms per image per core
on top (bench/bench_npz.py measures it). Every other operation reads the shards as they are.
"""

from __future__ import annotations

import argparse
import http.server
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from shards.writer import STATE_DIR

REPO = Path(__file__).resolve().parent.parent
FULL_SIZE = 6_002_688
HOST_BYTES = 24 * 2**30
TEST_SIZE = 1000
SHARD_SIZE = 10_000
PNG_POOL = 4096
# The first 100 steps of an Ideal World run of mcnn (width 16), as train-100 and stream-100 run them.
TRAIN_100 = [
    "--mode",
    "ideal",
    "--steps",
    "100",
    "--batch-size",
    "64",
    "--model",
    "mcnn",
    "--width",
    "16",
    "--eval-schedule",
    "every:100",
    "--test-samples",
    "1000",
    "--eval-train-samples",
    "128",
    "--no-progress",
    "--device",
    "cpu",
]


# --- the operations, each run in a child process (`--op NAME --data DIR --size N`) ----------------------
def png_pool(root: Path) -> tuple[np.ndarray, list[bytes]]:
    """The 4,096 images and their PNG bytes, made once per bench run (root/pool.npz) and loaded after."""
    path = root / "pool.npz"
    if not path.exists():
        from PIL import Image

        sys.path.insert(0, str(REPO / "bench"))
        from bench_shards import cifar_like_images

        images, blobs = cifar_like_images(PNG_POOL), []
        for image in images:
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format="PNG")
            blobs.append(buf.getvalue())
        ends = np.cumsum([len(b) for b in blobs])
        np.savez(path, images=images, ends=ends, blob=np.frombuffer(b"".join(blobs), np.uint8))
    with np.load(path) as pool:
        blob, ends = pool["blob"].tobytes(), pool["ends"]
        return pool["images"], [blob[a:b] for a, b in zip(np.r_[0, ends[:-1]], ends)]


def op_write(data: Path, size: int, shard_size: int = SHARD_SIZE) -> None:
    import shards.writer
    from shards import DatasetWriter

    pool, blobs = png_pool(data.parent)
    images = list(pool)  # row views kept alive, so their ids stay unique
    pngs = {id(image): blob for image, blob in zip(images, blobs)}
    # The writer sees real uint8 arrays (so the manifest records their shape) and gets their PNG bytes
    # from the pool instead of encoding them again.
    shards.writer.encode_image = lambda image, ext: pngs[id(image)]
    labels = np.random.default_rng(0).integers(0, 10, size + TEST_SIZE)
    writer = DatasetWriter(
        data,
        {"bench": "scale", "size": size},
        [f"c{i}" for i in range(10)],
        {"train": size, "test": TEST_SIZE},
        shard_size,
    )
    writer.prepare()
    offset = {"train": 0, "test": size}
    for spec in writer.pending():
        base = offset[spec.split] + spec.first_index
        writer.write_shard(
            spec,
            (
                {"image": images[(base + i) % PNG_POOL], "cls": int(labels[base + i]), "json": {"index": base + i}}
                for i in range(spec.count)
            ),
        )
    writer.finalize()


def op_manifest(data: Path, size: int) -> None:
    from shards import CardInfo, load_manifest
    from shards.card import card_body, card_yaml

    manifest = load_manifest(data)
    info = CardInfo(pretty_name="bench")
    assert card_yaml(manifest, info) and card_body(manifest, info)


def op_cache(data: Path, size: int) -> None:
    from shards import load_split

    assert len(load_split(data, "train", progress=False).labels) == size


def op_open(data: Path, size: int) -> None:
    from train.data.datasets import open_dataset

    assert open_dataset(str(data)).split("train").count == size


def op_ideal_ledger(data: Path, size: int) -> None:
    from train.core.samplers import IdealSampler, Ledger

    sampler, ledger, batch = IdealSampler(size, seed=0), Ledger(size), 128
    for step in range(size // batch):
        ledger.record(sampler.indices(step, batch))


def op_real_subset(data: Path, size: int) -> None:
    from train.core.samplers import RealSampler

    n, batch = size // 10, 128
    sampler = RealSampler(size, n, seed=0)
    for step in range(n // batch):
        sampler.indices(step, batch)


def op_data_100(data: Path, size: int) -> None:
    import torch

    from train.core import ddp
    from train.core.config import RunConfig
    from train.data.sources import build_run_data

    cfg = RunConfig(data=str(data), mode="ideal", steps=100, batch_size=64, model="mcnn", data_path="memory")
    run = build_run_data(cfg, ddp.Dist(), torch.device("cpu"), progress=False)
    for step in range(100):
        run.source.batch(step)


OPS = {
    "write": op_write,
    "manifest": op_manifest,
    "cache": op_cache,
    "open": op_open,
    "ideal-ledger": op_ideal_ledger,
    "real-subset": op_real_subset,
    "data-100": op_data_100,
}


# --- the driver -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measure:
    op: str
    size: int
    wall_s: float
    peak_bytes: int
    ok: bool
    note: str = ""


def run_child(argv: list[str], env: dict | None = None, kill_when=None) -> tuple[float, int, int, str]:
    """(wall s, peak RSS bytes, return code, stderr tail) of one child process; kill_when() -> SIGKILL it."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=REPO,
            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        )
        # os.wait4, not Popen.wait/poll: it returns the child's own rusage (its peak RSS).
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        while pid == 0:
            if kill_when is not None and kill_when():
                os.kill(proc.pid, signal.SIGKILL)
                kill_when = None
            time.sleep(0.05)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-1:] or [""]
    return time.perf_counter() - start, usage.ru_maxrss * 1024, proc.returncode, tail[0]


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def op_child(op: str, data: Path, size: int) -> list[str]:
    return python(__file__, "--op", op, "--data", str(data), "--size", str(size))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = lambda *a, **kw: _QuietHandler(*a, directory=str(folder), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def committed_fraction(data: Path, shards: int):
    state = data / STATE_DIR  # one stats file per committed shard
    return lambda: state.is_dir() and len(list(state.glob("*-*.json"))) >= math.ceil(0.9 * shards)


def merged(paths: list[str]) -> list[Measure]:
    """Measurements from JSON files; the operations a later file measured replace the earlier files' rows."""
    out: list[Measure] = []
    for path in paths:
        rows = [Measure(**row) for row in json.loads(Path(path).read_text())]
        out = [r for r in out if r.op not in {r.op for r in rows}] + rows
    return out


def measure_size(size: int, root: Path, ops: set[str] | None = None) -> list[Measure]:
    data, out = root / f"ds-{size}", root / f"runs-{size}"
    train_args = ["--data", str(data), *TRAIN_100]
    plans: list[tuple[str, list[str], dict, object]] = [
        ("write", op_child("write", data, size), {}, None),
        ("verify", python("-m", "shards", "verify", str(data)), {}, None),
        ("info", python("-m", "shards", "info", str(data)), {}, None),
        ("manifest", op_child("manifest", data, size), {}, None),
        ("cache", op_child("cache", data, size), {}, None),
        ("open", op_child("open", data, size), {}, None),
        ("ideal-ledger", op_child("ideal-ledger", data, size), {}, None),
        ("real-subset", op_child("real-subset", data, size), {}, None),
        ("data-100", op_child("data-100", data, size), {}, None),
        (
            "train-100",
            python("-m", "train", "run", *train_args, "--data-path", "memory", "--out", str(out / "train")),
            {},
            None,
        ),
        (
            "publish-dry",
            python("-m", "shards", "publish", str(data), "--repo", "bench/scale", "--dry-run"),
            {"HF_TOKEN": "hf_bench", "HF_ENDPOINT": "http://127.0.0.1:9"},
            None,
        ),
        (
            "sweep-plan",
            python(
                "-m",
                "train",
                "sweep",
                "--data",
                str(data),
                "--n",
                ",".join(str(size // d) for d in (100, 30, 10, 3)),
                "--seeds",
                "3",
                "--model",
                "mcnn",
                "--dry-run",
                "--out",
                str(out / "sweep"),
            ),
            {},
            None,
        ),
    ]
    results = []
    for op, argv, env, _ in plans:
        if ops is not None and op not in ops | {"write"}:
            continue
        wall, peak, rc, tail = run_child(argv, env)
        results.append(Measure(op, size, wall, peak, rc == 0, "" if rc == 0 else tail[:120]))
        print(
            f"  {op:<13} N={size:>9,}  {wall:8.2f} s  {peak / 2**20:8.0f} MB  {'ok' if rc == 0 else tail}", flush=True
        )
    if ops is None or "stream-100" in ops:
        results.append(measure_stream(size, data, out))
    if ops is None or "resume-90" in ops:
        results.append(measure_resume(size, root / f"resume-{size}"))
    shutil.rmtree(out, ignore_errors=True)
    return results


def measure_stream(size: int, data: Path, out: Path) -> Measure:
    server, url = serve(data)
    try:
        wall, peak, rc, tail = run_child(
            python(
                "-m",
                "train",
                "run",
                "--data",
                url,
                "--data-path",
                "stream",
                *TRAIN_100,
                "--num-workers",
                "1",
                "--out",
                str(out / "stream"),
            )
        )
    finally:
        server.shutdown()
    print(
        f"  {'stream-100':<13} N={size:>9,}  {wall:8.2f} s  {peak / 2**20:8.0f} MB  {'ok' if rc == 0 else tail}",
        flush=True,
    )
    return Measure("stream-100", size, wall, peak, rc == 0, "" if rc == 0 else tail[:120])


def measure_resume(size: int, data: Path) -> Measure:
    """Kill a writer at 90% of its shards, re-run it; the re-run's wall time and peak."""
    shard_size = max(1, size // 20)
    argv = python(__file__, "--op", "write", "--data", str(data), "--size", str(size), "--shard-size", str(shard_size))
    shards = math.ceil(size / shard_size) + math.ceil(TEST_SIZE / shard_size)
    run_child(argv, kill_when=committed_fraction(data, shards))
    wall, peak, rc, tail = run_child(argv)
    shutil.rmtree(data, ignore_errors=True)
    print(
        f"  {'resume-90':<13} N={size:>9,}  {wall:8.2f} s  {peak / 2**20:8.0f} MB  {'ok' if rc == 0 else tail}",
        flush=True,
    )
    return Measure("resume-90", size, wall, peak, rc == 0, "" if rc == 0 else tail[:120])


def local_exponent(a: Measure, b: Measure, value) -> float:
    """Log-log slope between the two largest sizes: how the cost grows where fixed costs no longer hide it."""
    return math.log(max(value(b), 1e-9) / max(value(a), 1e-9)) / math.log(b.size / a.size)


def project(a: Measure, b: Measure, value) -> float:
    """The cost at 6M samples: the largest size's, plus the marginal cost per sample between the two largest
    sizes times the samples still to come (affine, so a fixed start-up cost is not scaled up)."""
    slope = max(0.0, (value(b) - value(a)) / (b.size - a.size))
    return value(b) + slope * (FULL_SIZE - b.size)


def table(results: list[Measure]) -> str:
    sizes = sorted({r.size for r in results})
    head = " | ".join(f"{s:,}: s / MB" for s in sizes)
    lines = [
        f"| operation | {head} | us/sample at {sizes[-1]:,} | b time | b memory | 6M: time | 6M: peak | flag |",
        "|---|" + "---:|" * (len(sizes) + 6),
    ]
    wall, peak = (lambda r: r.wall_s), (lambda r: float(r.peak_bytes))
    for op in dict.fromkeys(r.op for r in results):
        rows = sorted((r for r in results if r.op == op), key=lambda r: r.size)
        cells = " | ".join(
            f"{r.wall_s:.2f} / {r.peak_bytes / 2**20:,.0f}" + ("" if r.ok else " (failed)") for r in rows
        )
        if len(rows) < 2 or not all(r.ok for r in rows):
            lines.append(f"| {op} | {cells} |" + " |" * 6)
            continue
        a, b = rows[-2], rows[-1]
        bt, bm = local_exponent(a, b, wall), local_exponent(a, b, peak)
        t6, m6 = project(a, b, wall), project(a, b, peak)
        flag = "; ".join(f for f, bad in (("superlinear time", bt > 1.15), ("over 24 GB", m6 > HOST_BYTES)) if bad)
        lines.append(
            f"| {op} | {cells} | {1e6 * b.wall_s / b.size:.1f} | {bt:.2f} | {bm:.2f} | "
            f"{t6:,.0f} s | {m6 / 2**30:.1f} GB | {flag or '-'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="train-split sizes, comma-separated")
    parser.add_argument("--root", help="working folder (default: a temporary one, removed at the end)")
    parser.add_argument("--json", help="also write every measurement to this JSON file")
    parser.add_argument("--ops", help="measure only these operations (comma-separated; `write` always runs)")
    parser.add_argument(
        "--from-json",
        help="print the table of measurements saved with --json (several: comma-"
        "separated, a later file's operations replacing the earlier ones'), measuring nothing",
    )
    parser.add_argument("--op", choices=sorted(OPS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--shard-size", type=int, default=SHARD_SIZE, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.from_json:
        print(table(merged(args.from_json.split(","))))
        return
    if args.op:
        kwargs = {"shard_size": args.shard_size} if args.op == "write" else {}
        OPS[args.op](Path(args.data), args.size, **kwargs)
        return
    root = Path(args.root or tempfile.mkdtemp(prefix="bench-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    # The pool is made once, in a child: a parent's resident memory at fork counts in a child's ru_maxrss.
    subprocess.run(
        python(
            "-c",
            f"import sys; sys.path.insert(0, {str(REPO / 'bench')!r}); import bench_scale; "
            f"bench_scale.png_pool(bench_scale.Path({str(root)!r}))",
        ),
        check=True,
        cwd=REPO,
    )
    results = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            print(f"N = {size:,}", flush=True)
            results += measure_size(size, root, set(args.ops.split(",")) if args.ops else None)
            shutil.rmtree(root / f"ds-{size}", ignore_errors=True)
    finally:
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=1))


if __name__ == "__main__":
    main()
