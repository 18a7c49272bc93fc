"""Shared fixtures: the shipped predictor (loaded once) and a tiny random model for fast engine-free tests."""
import os

import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shipped_predictor():
    from app.typing.loading import load_predictor

    return load_predictor()
