"""The notebooks under ``docs/notebooks/`` run as written, in a kernel of this Python, and are
committed without outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "docs" / "notebooks"


def test_notebooks_are_committed_without_outputs():
    found = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert found
    for path in found:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


def _kernel_of_this_python(folder: Path) -> None:
    """A ``python3`` kernel spec that runs this interpreter: ``JUPYTER_PATH`` comes first, so
    neither a user's nor the system's ``python3`` kernel (another Python) is picked."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python",
    }))


@pytest.mark.slow
def test_quickstart_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    _kernel_of_this_python(tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    nb = nbformat.read(NOTEBOOKS / "quickstart.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=600,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on an error
    outputs = [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    # The Explanations object shows inline, and so does the figure of ex.plot().
    assert any("<img src='data:image/png;base64," in page for page in html)
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 1
    assert not any(o.get("output_type") == "error" for o in outputs)
