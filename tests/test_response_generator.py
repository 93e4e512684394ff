"""The `response` generator: a held-out test family of response curves (docs/lab.md, "response")."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actmine.config import Config
from actmine.lab import generators as G
from actmine.lab import tasks as T
from actmine.lab.ensemble import TrainingProtocol
from actmine.lab.pools import measure
from actmine.lab.response_generator import MODELS

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _points(box, n=256, seed=0):
    rng = np.random.default_rng(seed)
    low, high = np.array([lo for lo, _ in box]), np.array([hi for _, hi in box])
    return low + (high - low) * rng.random((n, len(box)))


def _u_to_x(task: T.Task, u: np.ndarray) -> np.ndarray:
    starts = np.array([lo for lo, _ in task.id_box])
    lengths = np.array([hi - lo for lo, hi in task.id_box])
    return starts + lengths * u


def _model(task: T.Task) -> str:
    return task.description.split(" ", 1)[0]


@FAST
@given(model=st.sampled_from(sorted(MODELS)), index=st.integers(0, 10**9))
def test_every_model_is_finite_wherever_an_ood_box_can_reach(model, index):
    """OOD lengths are at most one ID length, so u ∈ [−1, 2]: every model is finite and not
    constant there, and each draw's boxes are valid lab boxes (finite, non-constant data)."""
    task = G.get_generator("response", models=[model], ood_length=[0.05, 1.0]).draw(index)
    assert _model(task) == model
    dims, _, _ = MODELS[model]
    assert task.input_dim in dims and task.family == "response"
    rng = np.random.default_rng(index % 2**32)
    u = rng.uniform(-1, 2, size=(2000, task.input_dim))
    u[:4] = np.array([-1.0, 2.0, 0.0, 1.0])[:, None]  # the extremes and the ID box's ends
    values = task.target(_u_to_x(task, u))
    assert values.shape == (2000,) and np.all(np.isfinite(values))
    assert len(task.id_box) == len(task.ood_box) == task.input_dim
    for (id_lo, id_hi), (ood_lo, ood_hi) in zip(task.id_box, task.ood_box):
        assert id_lo < id_hi and ood_lo < ood_hi
        assert ood_lo >= id_hi or ood_hi <= id_lo  # beyond the ID box in every coordinate
        assert (ood_hi - ood_lo) <= (id_hi - id_lo) + 1e-9
    for box in (task.id_box, task.ood_box):
        assert np.ptp(task.target(_points(box))) > 1e-6, (task.description, box)
    T.generate(task, 0, 64, 32)  # the lab's own checks: finite, not constant


def test_draws_are_deterministic_distinct_and_rebuild_from_their_spec():
    generator = G.get_generator("response")
    tasks = [generator.draw(i) for i in range(120)]
    again = G.get_generator("response").draw(17)
    assert again.description == tasks[17].description
    assert np.array_equal(again.target(_points(again.id_box)), tasks[17].target(_points(tasks[17].id_box)))
    assert len({t.name for t in tasks}) == 120
    assert len({t.description for t in tasks}) == 120
    assert {_model(t) for t in tasks} == set(MODELS)  # 120 draws reach all 17 models
    spec = json.loads(json.dumps(tasks[5].to_dict()))
    rebuilt = T.build_task(spec)
    assert rebuilt.description == tasks[5].description and rebuilt.id_box == tasks[5].id_box


def test_models_parameter_restricts_the_draws_and_refuses_unknown_models():
    generator = G.get_generator("response", models=["logistic", "planck"])
    assert {_model(generator.draw(i)) for i in range(30)} == {"logistic", "planck"}
    assert generator.draw(0).name.startswith("response-") and generator.draw(0).name != "response-0"
    with pytest.raises(G.GeneratorError, match="unknown option 'sawtooth'"):
        G.get_generator("response", models=["sawtooth"])
    with pytest.raises(G.GeneratorError, match="ood_length"):
        G.get_generator("response", ood_length=[0.5, 2.0])  # beyond one ID length the models are not checked


def test_periodic_models_make_at_most_cycles_periods_per_id_length():
    """The lab learns ~1.4 periods per ID length in 50 steps; a 1-D periodic draw's zero crossings
    on its ID interval say how many it makes."""
    for model in ("triangle_wave", "step_response"):
        generator = G.get_generator("response", models=[model], cycles=[1.0, 1.0])
        for index in range(10):
            task = generator.draw(index)
            u = np.linspace(0, 1, 4001)[:, None]
            y = task.target(_u_to_x(task, u))
            level = 1.0 if model == "step_response" else 0.0  # ringing around the settled value
            crossings = int(np.sum(np.diff(np.sign(y - level)) != 0))
            assert crossings <= 3, (task.description, crossings)  # one period: two crossings (+1 at an end)


def test_most_draws_pass_the_learnability_filter():
    """The pools keep a draw only if ReLU and GELU both learn it (normalised ID error < 0.05); the
    models' constants are set so that nearly every draw is learnable (measured: 311 of 340)."""
    generator = G.get_generator("response")
    tasks = [generator.draw(i) for i in range(34)]
    draws = measure(tasks, (0,), TrainingProtocol())
    kept = [d for d in draws if d.status == "kept"]
    assert len(kept) >= 27, [(d.name, d.status, d.message) for d in draws if d.status != "kept"]


def test_the_default_split_reports_response_as_an_unseen_test_suite():
    config = Config()
    assert [p["generator"] for p in config.tasks.test["response"]] == ["response"]
    assert all(p["generator"] != "response" for p in config.tasks.search)
    assert "response" in G.generator_names()


def test_docs_list_every_parameter_and_model():
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "lab.md").read_text(encoding="utf-8")
    section = text.split("**response**", 1)[1].split("### Suite files that name generators", 1)[0]
    for param in G.GENERATORS["response"].PARAMETERS:
        assert f"| `{param}` |" in section, param
    for model in MODELS:
        assert f"`{model}`" in section, model
