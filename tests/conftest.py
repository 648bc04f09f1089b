"""Shared fixtures: one torch thread per test module, and the tiny models of model_fixtures.py built once per
session (a random diffusers pipeline folder and a timm labeler saved as local-dir).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from model_fixtures import make_tiny_labeler, make_tiny_pipeline


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory) -> Path:
    """The toolkit's user cache directory (decoded arrays, downloads) in a session temp folder, so tests
    never write under ~/.cache; subprocesses inherit it."""
    from shards.cachedir import CACHE_ENV

    root = tmp_path_factory.mktemp("user-cache")
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(root)
    yield root
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread for a module's tests: byte comparisons across runs need the same float reductions,
    and tiny models on 2 shared cores run faster without thread oversubscription."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Path:
    """3x32x32 images, DDPM fixed_large with 4 training timesteps."""
    return make_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-ddpm")


@pytest.fixture(scope="session")
def tiny_labeler(tmp_path_factory) -> Path:
    """10-way test_resnet reading 3x24x24."""
    return make_tiny_labeler(tmp_path_factory.mktemp("models") / "tiny-labeler")


@pytest.fixture(scope="session")
def tiny_digits_pipeline(tmp_path_factory) -> Path:
    """1x8x8 images, like the demo's digits model."""
    return make_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-digits", channels=1, size=8)


@pytest.fixture(scope="session")
def tiny_digits_labeler(tmp_path_factory) -> Path:
    """10-way, 1-channel input at 16x16, with digit label names."""
    return make_tiny_labeler(
        tmp_path_factory.mktemp("models") / "tiny-digits-labeler",
        in_chans=1,
        input_size=16,
        label_names=[str(d) for d in range(10)],
        image_shape=(8, 8, 1),
    )


@pytest.fixture(scope="session", autouse=True)
def no_local_path_in_any_manifest_or_card(tmp_path_factory):
    """Once every test of the session ran: no manifest.json, nor the card (README.md) beside it, that the toolkit
    wrote in any test (a dataset folder with the writer's `.shards/created.json`; not the hostile manifests
    tests forge) holds the session's temporary root, the absolute local path every dataset and model here lies
    under (a published dataset must not leak the author's file system, and the same inputs elsewhere are the same)."""
    yield
    root = tmp_path_factory.getbasetemp()
    prefixes = {str(root), str(root.resolve())}
    written = [
        p
        for m in root.rglob("manifest.json")
        if (m.parent / ".shards" / "created.json").is_file()
        for p in (m, m.parent / "README.md")
        if p.is_file()
    ]
    leaks = [str(p.relative_to(root)) for p in written if any(x in p.read_text(errors="replace") for x in prefixes)]
    assert not leaks, f"absolute local paths in {', '.join(leaks[:5])}"


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """Random 1x8x8 diffusion model and 10-way labeler under the names the demo looks for."""
    from demo.data import CLASS_NAMES

    root = tmp_path_factory.mktemp("demo-models")
    make_tiny_pipeline(root / "digits-ddpm", channels=1, size=8)
    make_tiny_labeler(
        root / "digits-labeler", in_chans=1, input_size=16, label_names=CLASS_NAMES, image_shape=(8, 8, 1)
    )
    return root


def pytest_configure(config) -> None:
    """Tests that interrupt a child process need SIGINT to reach it: a shell's background job (`cmd &`)
    starts with SIGINT ignored, which Python keeps and every child inherits through exec. A handler here
    is reset to the default in each child, so the children get Python's KeyboardInterrupt again."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
