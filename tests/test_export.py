"""The activation pack: a generated program file (data only) of a run's top programs, loaded through
the candidate policy however it is loaded."""

import ast
import importlib.util
import json
import math
import shutil
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from actmine import activations
from actmine.candidate.loader import load_program_file
from actmine.candidate.source import CandidateError, read_candidate_file, read_candidate_reference
from actmine.evolve.database import ProgramDatabase, ProgramRecord
from actmine.language.files import (
    LOADER_FUNCTION,
    LOADER_MODULE,
    ProgramEntry,
    ProgramFileError,
    read_program_file,
    render_program_file,
    split_program_reference,
)
from actmine.report import export_pack

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
            source = (
                f"def helper(x):\n    return {scale} * x\n\n"
                "def activation_function(x):\n    return helper(torch.relu(x)) + helper(0.0 * x)\n"
            )
            db.add_program(
                ProgramRecord(
                    run_id=run_id,
                    proposal_index=index + k,
                    source=source,
                    fitness=fitness,
                    rationale=f'helper {scale} """ {HOSTILE} \\',
                    mutator="test",
                    probes={"pointwise": True},
                )
            )
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
    """The three programs a `--top 3` pack holds: the run's winner (heldout.json), then the fittest."""
    winner = json.loads((run_dir / "heldout.json").read_text())["winner"]
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        ranked = db.top(db.latest_run()["id"], 3)
        return [db.get(winner)] + [r for r in ranked if r.id != winner][:2]


def import_plainly(path, name):
    """`import` the file as a user would, with plain importlib."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def test_the_pack_holds_only_data_and_the_loader_call(pack, run_dir):
    tree = ast.parse(pack.read_text())
    body = tree.body
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value.value, str)  # the docstring
    assert [type(n) for n in body[1:]] == [ast.Assign, ast.Assign, ast.ImportFrom, ast.Expr]
    assert [ast.literal_eval(n.value) is not None for n in body[1:3]] == [True, True]  # plain literals
    assert body[3].module == LOADER_MODULE and [a.name for a in body[3].names] == [LOADER_FUNCTION]
    # no definition, class or other import anywhere: the programs are strings
    assert not any(isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda, ast.Import)) for n in ast.walk(tree))
    assert pack.read_text().isascii()
    # the reader gives back every program's exact source and its data, by name, fittest first
    records = top3(run_dir)
    data = read_program_file(pack.read_text())
    assert data.names == [f"mined_{r.id}" for r in records]
    for record, entry in zip(records, data.programs):
        assert entry.source == record.source and entry.class_name == f"Mined{record.id}"
        assert entry.info["program_id"] == record.id and entry.info["search_fitness"] == record.fitness
        assert entry.info["rationale"] == record.rationale and entry.info["run_dir"] == str(run_dir.resolve())
    # the hostile rationale is data: in a string, not in the docstring
    assert any(HOSTILE in e.info["rationale"] and '"""' in e.info["rationale"] for e in data.programs)
    assert HOSTILE not in ast.get_docstring(tree) and '"""' not in ast.get_docstring(tree)


def test_importing_the_pack_computes_each_program_with_its_own_helpers(pack, run_dir):
    module = import_plainly(pack, "mined_pack_under_test")
    records = top3(run_dir)
    assert list(module.ACTIVATIONS) == [f"mined_{r.id}" for r in records]
    helpers = [r for r in records if "def helper" in r.source]
    assert len(helpers) == 2  # the same helper name, two meanings: each program keeps its own
    for record in records:
        cls = module.ACTIVATIONS[f"mined_{record.id}"]
        assert cls is getattr(module, f"Mined{record.id}") and cls.pointwise and cls.program_id == record.id
        torch.testing.assert_close(cls()(torch.tensor(X)), torch.tensor(reference_values(record.source)))
        assert f"#{record.id}" in cls.__doc__ and f"{record.fitness:+.4f}" in cls.__doc__
        assert cls.__doc__.count(record.rationale) >= 1  # the rationale as text, at run time
    # compiled in the restricted namespace, not as module code: the functions' globals are the candidate's
    fn = module.ACTIVATIONS[f"mined_{records[0].id}"].function
    assert fn.__globals__["__name__"] == "candidate" and "open" not in fn.__globals__["__builtins__"]


def test_load_pack_and_get_by_path(pack, run_dir, restore_registry):
    names = activations.load_pack(pack)
    records = top3(run_dir)
    assert names == [f"mined_{r.id}" for r in records]
    info = activations.info(names[0])
    assert info.pointwise and info.source == f"exported from {pack.resolve()}"
    assert activations.load_pack(pack) == names  # loading again is a reload, not a clash
    module = activations.get(f"{pack}:{names[1]}")
    torch.testing.assert_close(module(torch.tensor(X)), torch.tensor(reference_values(records[1].source)))
    with pytest.raises(CandidateError) as missing:
        activations.get(f"{pack}:mined_does_not_exist")
    assert missing.value.code == "unknown_program" and names[0] in str(missing.value)


def test_a_pack_program_reads_as_a_candidate(pack, run_dir):
    records = top3(run_dir)
    name, source = read_candidate_reference(f"{pack}:mined_{records[0].id}")
    assert (name, source) == (f"mined_{records[0].id}", records[0].source)
    with pytest.raises(CandidateError) as several:
        read_candidate_file(pack)  # several programs: the file alone does not say which
    assert several.value.code == "unknown_program" and f"mined_{records[0].id}" in str(several.value)


OLD_PACK = '''"""A pack as actmine wrote it before: plain code."""
import torch
from torch import nn


def activation_1(x):
    open({marker!r}, "w").write("ran")
    return x


class Mined1(nn.Module):
    def forward(self, x):
        return activation_1(x)


ACTIVATIONS = {{"mined_1": Mined1}}
'''


def test_an_old_plain_code_pack_is_refused_unrun(tmp_path, restore_registry):
    marker = tmp_path / "ran"
    old = tmp_path / "old_pack.py"
    old.write_text(OLD_PACK.format(marker=str(marker)))
    for load in (
        lambda: activations.load_pack(old),
        lambda: activations.get(f"{old}:mined_1"),
        lambda: read_candidate_reference(f"{old}:mined_1"),
        lambda: load_program_file(old),
    ):
        with pytest.raises(CandidateError) as refused:
            load()
        assert refused.value.code == "stale_program_file"
        assert "actmine export" in str(refused.value) and "older actmine" in str(refused.value)
    assert not marker.exists()


def test_an_edited_pack_is_refused(pack, tmp_path):
    edited = tmp_path / "edited.py"
    edited.write_text(pack.read_text() + "\nimport os\n")
    with pytest.raises(CandidateError) as refused:
        load_program_file(edited)
    assert refused.value.code == "bad_program_file" and "Regenerate" in str(refused.value)
    swapped = tmp_path / "swapped.py"
    swapped.write_text(pack.read_text().replace(f"from {LOADER_MODULE} import", "from os import"))
    with pytest.raises(CandidateError) as refused:
        load_program_file(swapped)
    assert refused.value.code == "bad_program_file"


def test_references_are_split_at_the_last_colon():
    assert split_program_reference("runs/a:b/pack.py:mined_3") == ("runs/a:b/pack.py", "mined_3")
    assert split_program_reference("pack.py") is None and split_program_reference("relu") is None
    assert split_program_reference("pack.py:") is None


# ---- the renderer and the reader, for any text -------------------------------------------------

ANY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=()), max_size=200) | st.sampled_from(
    [
        '"""; import os; os.system("touch pwned"); """',
        "'''\n__import__('os')\n'''",
        "\\",
        "\x1b]0;x\x07\r\n",
        "\u2028\u202e# -*- coding: latin-1 -*-",
        "\ud800",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    source=ANY_TEXT,
    rationale=ANY_TEXT,
    docstring=ANY_TEXT,
    score=st.floats(allow_nan=True, allow_infinity=True) | st.none(),
    lineage=st.lists(st.fixed_dictionaries({"rationale": ANY_TEXT, "fitness": st.floats(-1e9, 1e9)}), max_size=3),
)
def test_any_text_stays_data(source, rationale, docstring, score, lineage):
    """Whatever the texts are, the file is ASCII, its statements are exactly the five of the format
    (no text can end its literal and start a statement) and it reads back as the same data."""
    entry = ProgramEntry("mined_1", "Mined1", source, {"rationale": rationale, "score": score, "lineage": lineage})
    text = render_program_file([entry], docstring)
    assert text.isascii()
    tree = ast.parse(text)
    assert [type(n) for n in tree.body] == [ast.Expr, ast.Assign, ast.Assign, ast.ImportFrom, ast.Expr]
    (read,) = read_program_file(text).programs
    assert read.source == source and read.info["rationale"] == rationale and read.info["lineage"] == lineage
    assert read.info["score"] == (score if score is not None and math.isfinite(score) else None)


def test_program_names_and_class_names_are_checked():
    for name, class_name in (
        ("Mined", "Mined1"),
        ("mined-1", "Mined1"),
        ("mined_1", "__class__"),
        ("mined_1", "ACTIVATIONS"),
        ("mined_1", "a b"),
        ("mined_1", "class"),
    ):
        with pytest.raises(ProgramFileError) as refused:
            render_program_file([ProgramEntry(name, class_name, "x")], "")
        assert refused.value.code == "bad_program_file"


def test_the_run_winner_is_exported_first_even_when_its_search_score_ranks_it_lower(run_dir, tmp_path):
    """The program chosen on validation is the one the run recommends: `--top 2` holds it first,
    then the fittest of the others by search score."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    with ProgramDatabase(copy / "programs.sqlite", readonly=True) as db:
        run_id = db.latest_run()["id"]
        ranked = [r.id for r in db.top(run_id, 1000)]
    low = ranked[-1]
    results = json.loads((copy / "heldout.json").read_text())
    assert results["winner"] not in ranked[:2]  # the fixture's winner is ranked low too
    (copy / "heldout.json").write_text(json.dumps({**results, "winner": low}))
    names = read_program_file(export_pack(copy, 2, tmp_path / "pack.py").read_text()).names
    assert names == [f"mined_{low}", f"mined_{ranked[0]}"]
    text = (tmp_path / "pack.py").read_text()
    assert "the run's winner (chosen on validation) first, then the fittest by search score" in text
    (copy / "heldout.json").write_text(json.dumps({**results, "winner": ranked[1]}))
    assert read_program_file(export_pack(copy, 2, tmp_path / "again.py").read_text()).names == [
        f"mined_{ranked[1]}",
        f"mined_{ranked[0]}",
    ]


def test_a_program_too_large_for_a_program_file_is_one_line_exit_2(run_dir, tmp_path, capsys):
    """A database edited by hand so that a top program's source is past what a program file may hold:
    `actmine export` said so in a traceback; now in one line, and no pack is written."""
    from actmine.cli import main
    from actmine.language.files import MAX_FILE_BYTES

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    with ProgramDatabase(copy / "programs.sqlite") as db:
        best = db.top(db.latest_run()["id"], 1)[0]
        db._conn.execute("UPDATE programs SET source = source || ? WHERE id = ?", ("#" * MAX_FILE_BYTES, best.id))
    out = tmp_path / "pack.py"
    assert main(["export", str(copy), "--out", str(out), "--top", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "more than a program file may hold" in err and "Traceback" not in err
    assert not out.exists()
