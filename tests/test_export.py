"""The activation pack: a plain PyTorch module file of a run's top programs."""

import ast
import json
import math
import shutil
import subprocess
import sys

import pytest
import torch

from actmine import activations
from actmine.evolve.database import ProgramDatabase, ProgramRecord
from actmine.report import export_pack
from actmine.report.export import rename_program

from test_report import HOSTILE, make_run

X = [-4.0 + 8.0 * i / 40 for i in range(41)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run_dir = make_run(tmp_path_factory.mktemp("export-run"))
    # two programs with the same helper name, each meaning something else, both in the top 3
    with ProgramDatabase(run_dir / "programs.sqlite") as db:
        run_id = db.latest_run()["id"]
        index = db.max_proposal_index(run_id) + 1
        for k, (scale, fitness) in enumerate([(2.0, 50.0), (3.0, 49.0)]):
            source = (f"def helper(x):\n    return {scale} * x\n\n"
                      "def activation_function(x):\n    return helper(torch.relu(x)) + helper(0.0 * x)\n")
            db.add_program(ProgramRecord(run_id=run_id, proposal_index=index + k, source=source, fitness=fitness,
                                         rationale=f'helper {scale} """ {HOSTILE} \\', mutator="test",
                                         probes={"pointwise": True}))
    return run_dir


def reference_values(source):
    namespace = {"torch": torch, "F": torch.nn.functional, "math": math}
    exec(source, namespace)  # the test's own run: trusted here
    return namespace["activation_function"](torch.tensor(X)).tolist()


@pytest.fixture(scope="module")
def pack(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pack") / "pack.py"
    return export_pack(run_dir, 3, out)


def top3(run_dir):
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        return db.top(db.latest_run()["id"], 3)


def test_pack_imports_without_actmine_and_computes_the_programs(pack, run_dir, tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(pack, alone / "pack.py")
    code = ("import sys, json, importlib.util\n"
            "sys.modules['actmine'] = None  # any import of actmine fails\n"
            "spec = importlib.util.spec_from_file_location('pack', 'pack.py')\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "import torch\n"
            f"x = torch.tensor({X!r})\n"
            "print(json.dumps({k: {'values': c()(x).tolist(), 'doc': c.__doc__, 'formula': c.formula}"
            " for k, c in m.ACTIVATIONS.items()}))\n")
    result = subprocess.run([sys.executable, "-I", "-c", code], cwd=alone, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    exported = json.loads(result.stdout)
    records = top3(run_dir)
    assert list(exported) == [f"mined_{r.id}" for r in records]
    for record in records:
        got = exported[f"mined_{record.id}"]
        torch.testing.assert_close(torch.tensor(got["values"]), torch.tensor(reference_values(record.source)))
        assert f"program #{record.id}" in got["doc"] and f"{record.fitness:+.4f}" in got["doc"]
        assert str(run_dir.resolve()) in got["doc"]
    # the hostile rationale stays inside the docstring (it is text, not code)
    assert any(HOSTILE in item["doc"] for item in exported.values())
    text = pack.read_text()
    tree = ast.parse(text)
    imports = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
               for alias in node.names} | {node.module.split(".")[0] for node in ast.walk(tree)
                                           if isinstance(node, ast.ImportFrom)}
    assert imports <= {"torch", "math", "nn"}


def test_helpers_are_renamed_per_program(pack, run_dir):
    text = pack.read_text()
    records = top3(run_dir)
    helpers = [r for r in records if "def helper" in r.source]
    assert len(helpers) == 2
    for record in helpers:
        assert f"def helper_{record.id}(x)" in text and f"helper_{record.id}(torch.relu(x))" in text
    assert "def helper(" not in text and "activation_function" not in text


def test_rename_is_consistent():
    source = ("def helper(y):\n    return y if y.numel() < 0 else helper2(y)\n\n"
              "def helper2(z):\n    return z * 2\n\n"
              "def activation_function(x):\n    helper = 1.0\n    return activation_function if False else x * helper\n")
    renamed = rename_program(source, "7", "activation_7")
    assert "def helper_7(y)" in renamed and "helper2_7(y)" in renamed and "def activation_7(x)" in renamed
    assert "helper_7 = 1.0" in renamed and "x * helper_7" in renamed


def test_load_pack_and_get_by_path(pack, run_dir, restore_registry):
    names = activations.load_pack(pack)
    records = top3(run_dir)
    assert names == [f"mined_{r.id}" for r in records]
    info = activations.info(names[0])
    assert info.pointwise and info.source == f"exported from {pack.resolve()}"
    assert activations.load_pack(pack) == names  # loading again is a reload, not a clash
    module = activations.get(f"{pack}:{names[1]}")
    torch.testing.assert_close(module(torch.tensor(X)), torch.tensor(reference_values(records[1].source)))
    with pytest.raises(activations.UnknownActivationError):
        activations.get(f"{pack}:mined_does_not_exist")
