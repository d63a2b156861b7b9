"""Shared fixtures: tiny models for fast unit tests, the real offline model for end-to-end ones.

Third-party plugins installed in the environment are not loaded in tests
(``XAI_CORE_DISABLE_PLUGIN_AUTOLOAD``), so results depend on xai-core alone.
"""

from __future__ import annotations

import copy
import os

os.environ.setdefault("XAI_CORE_DISABLE_PLUGIN_AUTOLOAD", "1")
os.environ.setdefault("XAI_CORE_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import xai_core  # noqa: E402
from xai_core import plugins  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_plugin_state():
    """Each test starts from the installed plugins only (tests may register their own)."""
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture(scope="session")
def lite0():
    """The real offline EfficientNet-Lite0 (loaded once per session)."""
    return xai_core.load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def _tiny_resnet_template():
    torch.manual_seed(0)
    return xai_core.load_model("timm/resnet10t", pretrained=False)


@pytest.fixture
def tiny_resnet(_tiny_resnet_template):
    """A small random-weight timm ResNet: fast, with in-place ReLUs. A fresh copy per test, so
    a test that changes the model (train mode, frozen weights) cannot affect another."""
    return copy.deepcopy(_tiny_resnet_template)


@pytest.fixture
def images64():
    torch.manual_seed(0)
    return torch.randn(2, 3, 64, 64)


@pytest.fixture(scope="session")
def sample_batch(lite0):
    """The cat and coffee sample photos, preprocessed for EfficientNet-Lite0: [2, 3, 224, 224]."""
    from xai_core.runner.inputs import load_image, sample_path

    return torch.stack(
        [lite0.preprocessing(load_image(sample_path(name))) for name in ("cat", "coffee")]
    )
