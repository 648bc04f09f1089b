"""Shared fixtures: one torch thread per test module, and the tiny models of model_fixtures.py built once per
session (a random diffusers pipeline folder and a timm labeler saved as local-dir).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_fixtures import make_tiny_labeler, make_tiny_pipeline


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
    return make_tiny_labeler(tmp_path_factory.mktemp("models") / "tiny-digits-labeler", in_chans=1,
                             input_size=16, label_names=[str(d) for d in range(10)], image_shape=(8, 8, 1))
