"""Shared fixtures: the shipped predictor (loaded once) and a tiny random model for fast engine-free tests."""
import atexit
import os
import shutil
import tempfile

import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="pocketkb-test-cache-")  # the prior's decoded arrays
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], True)
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shipped_predictor():
    from app.typing.loading import load_predictor

    return load_predictor()


@pytest.fixture(autouse=True)
def _unadapted_mixture(request):
    """Each test starts with the shared predictor's mixture weights unadapted (typing adapts them)."""
    if "shipped_predictor" in request.fixturenames:
        request.getfixturevalue("shipped_predictor").load_mixture({})
