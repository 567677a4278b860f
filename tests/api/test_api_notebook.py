"""examples/python-api.ipynb: what examples/make_python_api_notebook.py builds, committed without
outputs, and it runs: every cell, in a kernel of this Python, shows DataFrames as HTML tables."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOK = EXAMPLES / "python-api.ipynb"
KERNEL = "margin-engine-tests"


def builder():
    spec = importlib.util.spec_from_file_location("make_python_api_notebook", EXAMPLES / "make_python_api_notebook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_notebook_is_the_builders_with_outputs_cleared():
    committed = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(committed)
    built = builder().build()
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in built.cells]
    for cell in committed.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.fixture
def kernel_of_this_python(tmp_path, monkeypatch):
    """A kernel spec that starts `sys.executable -m ipykernel_launcher`, so the notebook runs in
    this environment whatever kernels the machine has installed (none, on a fresh CI machine)."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    return KERNEL


def test_notebook_runs_and_shows_dataframes(kernel_of_this_python):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name=kernel_of_this_python, timeout=120, resources={"metadata": {"path": str(EXAMPLES)}}
    )
    client.execute()  # a failing cell raises CellExecutionError, naming it
    html = {}
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            assert out.output_type != "error", (i, out)
            if "text/html" in out.get("data", {}):
                html[cell.source] = out.data["text/html"]
    tables = [source for source, h in html.items() if "<table" in h]
    assert len(tables) >= 12, tables
    std = html['std = me.margin("pm-book.json", profile="deribit")\nstd']
    assert "call-spread" in std and "153,502" in std  # README: call-spread under deribit, 153,502 USD
    compare = next(h for s, h in html.items() if s.startswith("compare = "))
    assert "saved_pct" in compare
    sim = next(h for s, h in html.items() if s.startswith("sim = me.simulate"))
    assert "guards-on" in sim and "flash-wick-1m" in sim  # generated prices: runs on any clone
