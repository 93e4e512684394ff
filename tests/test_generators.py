"""Task generators: deterministic draws, valid ID/OOD splits, rebuild from spec, suite entries."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actmine.lab import generators as G
from actmine.lab import tasks as T
from actmine.lab.tasks import SuiteError

BUILT_IN = ("polynomial", "harmonic", "feynman")


def _points(box, n=64, seed=0):
    rng = np.random.default_rng(seed)
    low = np.array([lo for lo, _ in box])
    high = np.array([hi for _, hi in box])
    return low + (high - low) * rng.random((n, len(box)))


def _fingerprint(task: T.Task) -> tuple:
    """What makes two tasks the same: inputs, boxes and the target's values on both boxes."""
    values = tuple(np.round(task.target(_points(box)), 9).tobytes() for box in (task.id_box, task.ood_box))
    return task.variables, task.id_box, task.ood_box, values


def _assert_same_task(a: T.Task, b: T.Task):
    assert (a.name, a.family, a.to_dict(), a.description) == (b.name, b.family, b.to_dict(), b.description)
    assert _fingerprint(a) == _fingerprint(b)


# --------------------------------------------------------------------------------------------
# The fixed families and built-in suites are unchanged
# --------------------------------------------------------------------------------------------


def _suite_digest(suite: T.Suite) -> str:
    """Specs, boxes and target values (9 significant digits) of every task of a suite."""
    digest = hashlib.sha256(json.dumps(suite.to_dict(), sort_keys=True).encode())
    for task in suite.tasks:
        rng = np.random.default_rng(0)
        for box in (task.id_box, task.ood_box):
            low = np.array([lo for lo, _ in box])
            high = np.array([hi for _, hi in box])
            x = low + (high - low) * rng.random((16, len(box)))
            digest.update(np.array([float(f"{v:.9g}") for v in task.target(x)]).tobytes())
        digest.update(repr((task.name, task.family, task.variables, task.id_box, task.ood_box)).encode())
    return digest.hexdigest()


def test_built_in_suites_are_unchanged():
    # Recorded from the suites before generators existed: the search's results and caches stay valid.
    assert _suite_digest(T.lab_suite()) == "408f3cdf0eff57d4e941f9c2ecc4d7c83e61bde92d04686d5c3c02435b3ed74d"
    assert _suite_digest(T.lab_heldout_suite()) == "63cf99c00bf72c3b1512879bb89c2d24c22c7437f70a93b2d59a545c7773f30a"


# --------------------------------------------------------------------------------------------
# Registry and protocol
# --------------------------------------------------------------------------------------------


def test_registry_holds_the_built_in_generators():
    for name in BUILT_IN:
        generator = G.get_generator(name)
        assert isinstance(generator, G.TaskGenerator)
        assert generator.name == name and generator.family == name
        assert generator.draw(0).family == name
        assert set(generator.params()) == set(G.GENERATORS[name].PARAMETERS)
        json.dumps(generator.params())  # JSON-able: part of cache keys


def test_params_are_complete_and_a_copy():
    generator = G.get_generator("polynomial", dim=3)
    params = generator.params()
    assert params["dim"] == [3, 3] and params["degree"] == [2, 5]
    params["dim"] = [9, 9]
    assert generator.params()["dim"] == [3, 3]
    # the filled-in params rebuild the same generator
    _assert_same_task(G.get_generator("polynomial", **generator.params()).draw(4), generator.draw(4))


def test_every_parameter_is_documented():
    described = G.describe_generators()
    for name in BUILT_IN:
        rows = described[name]
        assert [r["param"] for r in rows] == list(G.GENERATORS[name].PARAMETERS)
        assert all(r["doc"] and r["allowed"] for r in rows), name


def test_register_generator_refuses_a_second_owner_of_a_name():
    with pytest.raises(ValueError, match="already registered"):
        G.register_generator("polynomial")(lambda **_: None)


# --------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------

CASES = [
    ("polynomial", {"dim": [1, 8]}, 17),
    ("harmonic", {"envelopes": ["decay", "quadratic"]}, 5),
    ("feynman", {}, 321),
]


def _case_digest(name, params, index) -> str:
    task = G.get_generator(name, **params).draw(index)
    data = T.generate(task, 1, 32, 16)
    digest = hashlib.sha256(json.dumps(task.to_dict(), sort_keys=True).encode())
    for tensor in (data.x_train, data.y_train, data.x_id, data.y_id, data.x_ood, data.y_ood):
        digest.update(np.round(tensor.numpy(), 9).tobytes())
    return digest.hexdigest()


def test_draws_and_data_are_the_same_in_a_fresh_process():
    code = (
        "import json, sys; sys.path.insert(0, 'tests'); from test_generators import _case_digest, CASES; "
        "print(json.dumps([_case_digest(*case) for case in CASES]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    )
    assert json.loads(out.stdout) == [_case_digest(*case) for case in CASES]


@pytest.mark.parametrize("name", BUILT_IN)
def test_same_params_and_index_give_the_same_task(name):
    for index in (0, 3, 41):
        _assert_same_task(G.get_generator(name).draw(index), G.get_generator(name).draw(index))


@pytest.mark.parametrize("name", BUILT_IN + ("expression",))
def test_a_remembered_draw_is_the_draw_made_afresh(name, monkeypatch):
    """Draws are remembered per process (a worker rebuilds every sample's tasks from their specs);
    what the memo returns is what drawing again gives, and other params or indexes never share."""

    def rebuilt(index: int) -> T.Task:
        [task] = T.expand_generator_entry({"generator": name, "index": index})
        return task

    remembered = [rebuilt(0), rebuilt(5)]
    assert rebuilt(5) is remembered[1]
    monkeypatch.setattr(T, "_drawn", type(T._drawn)())
    afresh = [rebuilt(0), rebuilt(5)]
    assert afresh[0] is not remembered[0]
    assert [_fingerprint(t) for t in afresh] == [_fingerprint(t) for t in remembered]
    assert [_fingerprint(t) for t in afresh] == [_fingerprint(G.get_generator(name).draw(i)) for i in (0, 5)]
    assert remembered[0].name != remembered[1].name


def test_the_draw_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(T, "_drawn", type(T._drawn)())
    monkeypatch.setattr(T, "DRAW_MEMO_SIZE", 5)
    generator = G.get_generator("polynomial")
    first = T.draw_task(generator, 0)
    for index in range(1, 8):
        T.draw_task(generator, index)
    assert len(T._drawn) == 5
    again = T.draw_task(generator, 0)
    assert again is not first and _fingerprint(again) == _fingerprint(first)
    other = T.draw_task(G.get_generator("polynomial", dim=2), 7)
    assert other.spec != T.draw_task(generator, 7).spec


def test_draws_ignore_the_global_random_state():
    np.random.seed(0)
    first = G.get_generator("harmonic").draw(2)
    np.random.seed(1)
    np.random.random(100)
    assert _fingerprint(G.get_generator("harmonic").draw(2)) == _fingerprint(first)


@pytest.mark.parametrize("name, count", [("polynomial", 60), ("harmonic", 60), ("feynman", 928)])
def test_distinct_indexes_give_distinct_tasks(name, count):
    generator = G.get_generator(name)
    tasks = [generator.draw(i) for i in range(count)]
    assert len({t.name for t in tasks}) == count
    assert len({_fingerprint(t) for t in tasks}) == count


def test_other_params_give_other_names():
    a = G.get_generator("polynomial").draw(0)
    b = G.get_generator("polynomial", dim=2).draw(0)
    assert a.name == "polynomial-0" and b.name.startswith("polynomial-") and b.name != a.name
    assert b.name == G.get_generator("polynomial", dim=[2, 2]).draw(0).name  # same params, same name


# --------------------------------------------------------------------------------------------
# Every draw: disjoint boxes, finite targets, something to learn
# --------------------------------------------------------------------------------------------


def _check_draw(task: T.Task):
    assert len(task.id_box) == len(task.ood_box) == task.input_dim
    assert G.boxes_disjoint(task.id_box, task.ood_box), task.name
    for box in (task.id_box, task.ood_box):
        assert all(lo < hi for lo, hi in box)
        assert np.all(np.isfinite(task.target(_points(box, 256)))), task.name
    T.generate(task, 0, 64, 32)  # raises if non-finite on either box or constant on ID


def _range(lo, hi, cast=float):
    return st.tuples(
        st.floats(lo, hi) if cast is float else st.integers(lo, hi),
        st.floats(lo, hi) if cast is float else st.integers(lo, hi),
    ).map(lambda p: sorted(p))


def _subset(options):
    return st.lists(st.sampled_from(options), min_size=1, max_size=len(options), unique=True)


POLYNOMIAL_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "dim": _range(1, 12, int),
        "degree": _range(1, 6, int),
        "sparsity": _range(0.01, 1.0),
        "max_terms": st.integers(1, 64),
        "coefficient_laws": _subset(["normal", "uniform", "log-uniform"]),
        "coefficient_range": _range(0.01, 100.0),
        "box_low": _range(-3.0, 3.0),
        "box_width": _range(0.1, 3.0),
        "ood_width": _range(0.1, 2.0),
        "ood_sides": _subset(["upper", "lower"]),
    },
)
HARMONIC_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "n_tones": _range(1, 8, int),
        "frequency_law": _subset(["uniform", "log-uniform"]),
        "cycles": _range(0.05, 5.0),
        "phase_law": _subset(["uniform", "zero"]),
        "amplitude_law": _subset(["uniform", "log-uniform"]),
        "amplitudes": _range(0.01, 10.0),
        "envelopes": _subset(["none", "linear", "quadratic", "decay"]),
        "trend": _range(0.0, 5.0),
        "decay": _range(0.1, 5.0),
        "id_start": _range(-5.0, 5.0),
        "id_length": _range(0.2, 5.0),
        "ood_length": _range(0.1, 2.0),
        "ood_sides": _subset(["upper", "lower"]),
    },
)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(params=POLYNOMIAL_PARAMS, index=st.integers(0, 10**9))
def test_polynomial_draws_are_valid(params, index):
    task = G.get_generator("polynomial", **params).draw(index)
    _check_draw(task)
    p = G.get_generator("polynomial", **params).params()
    assert p["dim"][0] <= task.input_dim <= p["dim"][1]
    ((low, high),) = set(task.id_box)  # a cube
    assert p["box_low"][0] <= low <= p["box_low"][1]
    assert p["box_width"][0] - 1e-9 <= high - low <= p["box_width"][1] + 1e-9


@FAST
@given(params=HARMONIC_PARAMS, index=st.integers(0, 10**9))
def test_harmonic_draws_are_valid(params, index):
    task = G.get_generator("harmonic", **params).draw(index)
    _check_draw(task)
    assert task.input_dim == 1


@FAST
@given(index=st.integers(0, 927), fraction=st.sampled_from([0.5, 0.3, 0.7]))
def test_feynman_draws_are_valid(index, fraction):
    _check_draw(G.get_generator("feynman", id_fraction=fraction).draw(index))


def test_polynomial_degree_and_sparsity():
    generator = G.get_generator(
        "polynomial", dim=2, degree=3, sparsity=1.0, coefficient_laws="uniform", coefficient_range=1.0
    )
    task = generator.draw(0)
    # all 9 non-constant monomials of degree <= 3 in 2 variables, each with coefficient ±1
    assert "(9 terms)" in task.description
    x = np.array([[1.0, 1.0], [2.0, 0.0]])
    y = task.target(x)
    assert abs(y[0]) <= 9 and float(y[0]).is_integer()
    single = G.get_generator("polynomial", dim=1, degree=4, sparsity=0.01).draw(3)
    assert "x0^4" in single.description and "terms" not in single.description
    xs = np.linspace(0.5, 2.0, 7)[:, None]
    assert np.allclose(single.target(xs) / xs[:, 0] ** 4, single.target(xs[:1])[0] / 0.5**4)


def test_harmonic_decay_and_trend_envelopes():
    decaying = G.get_generator("harmonic", envelopes="decay", n_tones=1, decay=0.5, id_length=2.0, cycles=1.0).draw(0)
    x = np.linspace(0.0, 4.0, 4001)[:, None]  # t = x/2 in [0, 2]: one period per unit of t
    undone = decaying.target(x) * np.exp(x[:, 0] / 2 / 0.5)
    first, second = np.abs(undone[:2000]).max(), np.abs(undone[2000:]).max()
    assert 0.5 - 1e-3 <= first <= 1.5 and first == pytest.approx(second, rel=1e-3)  # the same sine, decayed
    trending = G.get_generator("harmonic", envelopes="linear", n_tones=1, trend=100.0, amplitudes=1.0).draw(1)
    ends = trending.target(np.array([[0.0], [trending.ood_box[0][1]]]))
    assert abs(ends[1] - ends[0]) > 50


# --------------------------------------------------------------------------------------------
# Feynman: what is offered
# --------------------------------------------------------------------------------------------


def test_feynman_offers_every_equation_of_the_list():
    equations = T.feynman_equations()
    assert len(G.get_generator("feynman", splits="upper")) == len(equations) == 100
    first = [G.get_generator("feynman").draw(i) for i in range(len(equations))]
    # indexes 0..99: every equation once, in file order, with the lab's split
    assert [t.description.split(":")[0] for t in first] == list(equations)
    lab_task = T.feynman("I.29.4")
    drawn = first[list(equations).index("I.29.4")]
    assert (drawn.variables, drawn.id_box, drawn.ood_box) == (lab_task.variables, lab_task.id_box, lab_task.ood_box)
    x = _points(drawn.ood_box)
    np.testing.assert_allclose(drawn.target(x), lab_task.target(x))


def test_feynman_count_with_every_split():
    # upper and lower for every equation; one-variable splits for every variable of the 99
    # equations with 2+ variables (every listed variable appears in its formula).
    equations = T.feynman_equations().values()
    expected = 2 * 100 + 2 * sum(len(eq.variables) for eq in equations if len(eq.variables) > 1)
    assert len(G.get_generator("feynman")) == expected == 928
    assert [(e.equation, e.split) for e in G.feynman_exclusions()] == [("I.6.2a", "one-upper"), ("I.6.2a", "one-lower")]


def test_feynman_one_variable_split_moves_only_that_variable():
    generator = G.get_generator("feynman", equations=["I.12.1"], splits="one-upper")
    assert len(generator) == 2
    for task in (generator.draw(0), generator.draw(1)):
        moved = [i for i, (a, b) in enumerate(zip(task.id_box, task.ood_box)) if a != b]
        assert len(moved) == 1 and task.ood_box[moved[0]][0] == task.id_box[moved[0]][1]


def test_feynman_index_beyond_the_list_says_how_many():
    with pytest.raises(G.GeneratorError, match=r"index 100 is out of range.*100 tasks"):
        G.get_generator("feynman", splits=["upper"]).draw(100)


# --------------------------------------------------------------------------------------------
# Rebuild from spec
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, params, index", CASES)
def test_drawn_tasks_rebuild_from_their_spec(name, params, index):
    task = G.get_generator(name, **params).draw(index)
    spec = task.to_dict()
    assert spec["family"] == name and spec["generator"] == name and spec["index"] == index
    _assert_same_task(T.build_task(spec), task)
    _assert_same_task(T.build_task(json.loads(json.dumps(spec))), task)


def test_a_suite_of_drawn_tasks_round_trips_through_json():
    suite = T.Suite.from_dict(
        {
            "name": "drawn",
            "tasks": [
                {"generator": "polynomial", "indexes": [0, 3]},
                {"generator": "harmonic", "params": {"n_tones": 2}, "count": 2, "start": 7},
                {"family": "feynman", "equation": "I.6.2a"},
            ],
        }
    )
    again = T.Suite.from_dict(json.loads(json.dumps(suite.to_dict())))
    for a, b in zip(suite.tasks, again.tasks, strict=True):
        _assert_same_task(a, b)


# --------------------------------------------------------------------------------------------
# Suite files that name generators
# --------------------------------------------------------------------------------------------


def test_suite_file_expands_generator_entries(tmp_path):
    path = tmp_path / "drawn.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "drawn",
                "seeds": 2,
                "tasks": [
                    {"family": "harmonic", "seed": 1},
                    {"generator": "polynomial", "params": {"dim": [1, 3], "degree": 3}, "indexes": [0, 5]},
                    {"generator": "feynman", "count": 3, "start": 10},
                    {"generator": "harmonic", "index": 4, "name": "my-wave"},
                ],
            }
        )
    )
    suite = T.load_suite_file(path)
    assert len(suite.tasks) == 1 + 5 + 3 + 1
    polynomial = G.get_generator("polynomial", dim=[1, 3], degree=3)
    for i, task in enumerate(suite.tasks[1:6]):
        _assert_same_task(task, polynomial.draw(i))
    assert [t.spec["index"] for t in suite.tasks[6:9]] == [10, 11, 12]
    assert suite.tasks[9].name == "my-wave"
    assert _fingerprint(suite.tasks[9]) == _fingerprint(G.get_generator("harmonic").draw(4))
    assert T.build_task(suite.tasks[9].to_dict()).name == "my-wave"


def test_suite_toml_with_a_generator_entry(tmp_path):
    path = tmp_path / "drawn.toml"
    path.write_text(
        'name = "t"\n[[tasks]]\ngenerator = "polynomial"\ncount = 2\n'
        '[tasks.params]\ndim = [2, 4]\nood_sides = "upper"\n'
    )
    suite = T.load_suite_file(path)
    assert [t.spec["index"] for t in suite.tasks] == [0, 1]
    assert all(t.ood_box[0][0] == t.id_box[0][1] for t in suite.tasks)


@pytest.mark.parametrize(
    "entry, fragments",
    [
        (
            {"generator": "polynomal", "count": 2},
            ["task 2", "unknown generator 'polynomal'", "did you mean 'polynomial'"],
        ),
        (
            {"generator": "polynomial", "params": {"dim": [0, 40]}, "count": 2},
            ["task 2", "param 'dim'", "1 <= low <= high <= 32", "[0, 40]"],
        ),
        ({"generator": "polynomial", "params": {"dgree": 3}, "count": 2}, ["param 'dgree'", "did you mean 'degree'"]),
        (
            {"generator": "harmonic", "params": {"envelopes": ["decay", "sawtooth"]}, "count": 1},
            ["param 'envelopes'", "'sawtooth'", "none, linear, quadratic, decay"],
        ),
        ({"generator": "harmonic", "params": {"cycles": [2, 1]}, "count": 1}, ["param 'cycles'", "low <= high"]),
        (
            {"generator": "feynman", "params": {"id_fraction": 1.0}, "count": 1},
            ["param 'id_fraction'", "strictly between"],
        ),
        ({"generator": "feynman", "params": {"equations": ["I.6.2z"]}, "count": 1}, ["'I.6.2z'", "I.6.2a"]),
        ({"generator": "feynman", "params": {"splits": "upper"}, "indexes": [95, 105]}, ["index 100", "100 tasks"]),
        ({"generator": "polynomial"}, ["exactly one of 'index'", "got none"]),
        ({"generator": "polynomial", "index": 1, "count": 2}, ["exactly one of", "index, count"]),
        ({"generator": "polynomial", "indexes": [5, 5]}, ["'indexes'", "0 <= start < stop"]),
        ({"generator": "polynomial", "indexes": [0, 3], "start": 1}, ["'start' goes with 'count'"]),
        ({"generator": "polynomial", "count": 0}, ["'count'", ">= 1"]),
        ({"generator": "polynomial", "count": 2, "name": "x"}, ["'name'", "with 'index'"]),
        ({"generator": "polynomial", "count": 2, "params": [1]}, ["'params'", "mapping"]),
        ({"generator": "polynomial", "count": 2, "seed": 3}, ["unknown field(s) seed", "allowed"]),
        ({"generator": "polynomial", "index": 2, "family": "harmonic"}, ["'family' is 'harmonic'", "'polynomial'"]),
    ],
)
def test_bad_generator_entries_say_what_is_wrong(tmp_path, entry, fragments):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "tasks": [{"family": "harmonic"}, entry]}))
    with pytest.raises(SuiteError) as info:
        T.load_suite_file(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_overlapping_generator_entries_are_refused_as_duplicates():
    with pytest.raises(SuiteError, match="unique.*polynomial-2"):
        T.Suite.from_dict({"tasks": [{"generator": "polynomial", "count": 3}, {"generator": "polynomial", "index": 2}]})


def test_build_task_of_a_range_entry_asks_for_one_index():
    with pytest.raises(SuiteError, match="single task"):
        T.build_task({"generator": "polynomial", "count": 2})


def test_bad_index_type():
    for index in (-1, 1.5, True, "3"):
        with pytest.raises(G.GeneratorError, match="non-negative integer"):
            G.get_generator("harmonic").draw(index)


def test_docs_list_every_parameter():
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "lab.md").read_text(encoding="utf-8")
    section = text.split("## Task generators", 1)[1].split("\n## ", 1)[0]
    for name in BUILT_IN:
        for param in G.GENERATORS[name].PARAMETERS:
            assert f"| `{param}` |" in section, (name, param)
