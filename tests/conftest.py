"""Shared fixtures: tiny models for fast unit tests, the real offline model for end-to-end ones.

Third-party plugins installed in the environment are not loaded in tests
(``XAI_CORE_DISABLE_PLUGIN_AUTOLOAD``), so results depend on xai-core alone.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

os.environ.setdefault("XAI_CORE_DISABLE_PLUGIN_AUTOLOAD", "1")
os.environ.setdefault("XAI_CORE_OFFLINE", "1")
# The plugin catalog (`xai --help`, `xai list`) is cached per test session, not in ~/.cache.
if "XAI_CORE_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["XAI_CORE_CACHE_DIR"] = tempfile.mkdtemp(prefix="xai-catalog-")

import pytest  # noqa: E402
import torch  # noqa: E402

import xai_core  # noqa: E402
from xai_core import plugins  # noqa: E402

#: The example plugin package of the docs: one attributor, synthesizer, metric and model.
EXAMPLE_PLUGIN = Path(__file__).resolve().parents[1] / "docs" / "examples" / "xai-sobel-plugin"


@pytest.fixture(autouse=True)
def _fresh_plugin_state():
    """Each test starts from the installed plugins only (tests may register their own)."""
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def register_attributors():
    """``register_attributors(name, *classes)``: registers a plugin ``name`` (a module of that
    name) whose ``register_attributors`` hook registers ``classes``, in order, as a plugin
    author's module does; :func:`_fresh_plugin_state` removes it after the test."""

    def add_plugin(name: str, *classes: object) -> None:
        module = types.ModuleType(name)

        @xai_core.hookimpl
        def register_attributors(register):
            for cls in classes:
                register(cls)

        module.register_attributors = register_attributors
        xai_core.register_plugin(module, name=name)

    return add_plugin


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


@pytest.fixture(scope="session")
def installed_example(tmp_path_factory) -> tuple[Path, Path]:
    """(site, source): the example installed into ``site`` with no network, from a clean copy
    (``source``) so that build leftovers in the docs tree never get into the wheel."""
    base = tmp_path_factory.mktemp("example")
    source = base / "src"
    shutil.copytree(
        EXAMPLE_PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    site = base / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return site, source
