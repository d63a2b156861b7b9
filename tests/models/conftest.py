"""Fixtures of the model-source tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def hub_cache(tmp_path):
    """``put(folder, repo_id)``: a Hugging Face cache under ``tmp_path`` holding ``folder`` (a
    ``save_pretrained`` directory) as the files of model ``repo_id``; returns the cache folder."""

    def put(folder: Path, repo_id: str) -> Path:
        cache = tmp_path / "hf-cache"
        repo = cache / ("models--" + repo_id.replace("/", "--"))
        shutil.copytree(folder, repo / "snapshots" / "0123abcd")
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text("0123abcd")
        return cache

    return put
