"""examples/tutorial.ipynb runs headless, top to bottom, and does what its text says.

The notebook is executed once per session by nbclient in a kernel of this interpreter
(`sys.executable`, from a kernel spec written into the test's temporary directory: nothing is
registered with Jupyter globally), with its working directory, temporary files and IPython
profile in temporary directories. The tests then read the executed cells' outputs, and check
the run the notebook searched and the pack it exported independently, from this process.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

import actmine
from actmine.activations import ActivationRegistry, load_pack

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "tutorial.ipynb"
KERNEL = "actmine-test-kernel"
#: Appended to the executed copy only: what the notebook made, as one JSON line, for the checks here.
REPORT_CELL = """
import json, sys
print(json.dumps({"python": sys.executable, "work": str(WORK), "run_dir": str(RUN_DIR), "pack": str(pack),
                  "winner": int(winner_id)}))
"""
#: The functions the tutorial's comparison scores, as the rows name them.
COMPARED = ("relu", "gelu", "gelu_sine", "gelu_sinc_perturbation", "gmtu", "turbulent", "SiLU")


def _kernel_manager(kernel_dirs: Path) -> AsyncKernelManager:
    """A kernel manager that knows one kernel only: this interpreter running ipykernel."""
    spec_dir = kernel_dirs / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "actmine tests",
                "language": "python",
            }
        )
    )
    specs = KernelSpecManager(kernel_dirs=[str(kernel_dirs)], ensure_native_kernel=False)
    return AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook executed (nbclient raises on the first cell that fails), and the report
    cell's facts: the kernel's interpreter and the paths of the run and the pack."""
    base = tmp_path_factory.mktemp("notebook")
    for folder in ("cwd", "tmp", "ipython"):
        (base / folder).mkdir()
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(REPORT_CELL.strip()))
    with pytest.MonkeyPatch.context() as env:  # the kernel inherits this environment
        env.setenv("TMPDIR", str(base / "tmp"))
        env.setenv("IPYTHONDIR", str(base / "ipython"))
        client = NotebookClient(
            notebook,
            km=_kernel_manager(base / "kernels"),
            timeout=300,
            resources={"metadata": {"path": str(base / "cwd")}},
        )
        client.execute()
    facts = json.loads(_text(notebook.cells[-1]).strip().splitlines()[-1])
    return notebook, facts, base


def _text(cell) -> str:
    """Everything a code cell showed as text: printed streams and its result's plain-text form."""
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/plain", ""))
    return "".join(parts)


def _rows(table: str) -> dict[int, list[str]]:
    """A DataFrame's plain-text form as {row index: its cells' words}, joining the blocks pandas
    splits a wide table into (header lines and the continuation marks left out)."""
    rows: dict[int, list[str]] = {}
    for line in table.splitlines():
        words = line.split()
        if words and words[0].isdigit():
            rows.setdefault(int(words[0]), []).extend(word for word in words[1:] if word != "\\")
    return rows


def _cell(notebook, fragment: str):
    """The one code cell whose source holds `fragment`."""
    (cell,) = [c for c in notebook.cells if c.cell_type == "code" and fragment in c.source]
    return cell


def test_the_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)


def test_every_cell_ran_without_error_in_the_venvs_python(executed):
    notebook, facts, base = executed
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert Path(facts["python"]) == Path(sys.executable)
    assert Path(facts["work"]).parent == base / "tmp"  # the notebook wrote into a temporary folder


def test_the_comparison_names_each_function_and_the_refusal(executed):
    notebook, _, _ = executed
    rows = {words[0]: words[1:] for words in _rows(_text(_cell(notebook, "actmine.compare("))).values()}
    assert set(rows) == set(COMPARED)
    assert rows["turbulent"][0] == "False" and rows["turbulent"][-1] == "batch_dependent"
    assert rows["relu"][0] == "True" and float(rows["relu"][1]) == 0.0  # the reference: fitness 0
    assert all(
        rows[name][0] == "True" and math.isfinite(float(rows[name][1])) for name in COMPARED if name != "turbulent"
    )


def test_the_search_finished_and_chose_the_winner_it_reports(executed):
    notebook, facts, _ = executed
    run = actmine.open_run(facts["run_dir"])
    assert run.status() == "finished"
    assert len(run.programs()) == 8  # the notebook's budget
    assert run.heldout().winner == facts["winner"]
    assert "proposals evaluated: 8 | status: finished" in _text(_cell(notebook, "actmine.search("))
    assert f"winner: program {facts['winner']} chosen by validation" in _text(_cell(notebook, "run.heldout()"))


def test_the_curve_cell_draws_a_figure(executed):
    notebook, _, _ = executed
    cell = _cell(notebook, "plt.subplots(")
    assert any("image/png" in output.get("data", {}) for output in cell.outputs)


@pytest.fixture(scope="module")
def winner_modules(executed):
    """The winner as the run gives it and as the exported pack gives it, loaded here."""
    _, facts, _ = executed
    registry = ActivationRegistry()
    names = load_pack(facts["pack"], registry=registry)
    assert names[0] == f"mined_{facts['winner']}"  # the winner first, whatever its search score
    return actmine.open_run(facts["run_dir"]).best_module(), registry.get(f"mined_{facts['winner']}")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=1, max_size=16))
def test_the_exported_module_computes_the_runs_best_module(winner_modules, values):
    best, exported = winner_modules
    assert type(best).program_id == type(exported).program_id
    x = torch.tensor(values, dtype=torch.float32)
    torch.testing.assert_close(exported(x), best(x), rtol=0, atol=0, equal_nan=True)


def test_the_notebook_saw_no_difference_and_trained_the_models(executed):
    notebook, facts, _ = executed
    assert "largest difference from run.best_module(): 0.0" in _text(_cell(notebook, "export_pack("))
    rows = {words[0]: words[1:] for words in _rows(_text(_cell(notebook, "def train("))).values()}
    assert set(rows) == {f"mined_{facts['winner']}", "ReLU", "GELU"}
    assert all(len(errors) == 2 and all(math.isfinite(float(e)) for e in errors) for errors in rows.values())
