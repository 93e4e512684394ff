"""The profile benchmark (benchmarks/bench_profile.py), short: its child isolates a candidate, the
shares it reports add up and follow the activation's cost, and a hostile candidate is an error line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_profile  # noqa: E402

COSTLY = (
    "def activation_function(x):\n"
    "    return torch.sin(torch.tanh(x) * torch.exp(-x * x)) + torch.sigmoid(x) * torch.cos(x) + 0.1 * x\n"
)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    path = tmp_path_factory.mktemp("suite") / "tiny.yaml"
    path.write_text(yaml.safe_dump({"seeds": 2, "tasks": [{"family": "polynomial", "dim": 1, "seed": 0}]}))
    return str(path)


def request(suite: str, name: str, source: str | None = None) -> dict:
    return {"name": name, "source": source, "suite": suite, "repeats": 1, "memory_mb": 3072, "cpu_s": 120}


def test_the_shares_add_up_and_a_costly_activation_shows_as_activation_time(suite):
    relu = bench_profile.run_child(request(suite, "relu"), timeout=180)
    costly = bench_profile.run_child(request(suite, "program 1", COSTLY), timeout=180)
    for result in (relu, costly):
        assert "error" not in result, result
        assert set(result["shares"]) == set(bench_profile.CATEGORIES)
        assert sum(result["shares"].values()) == pytest.approx(1.0)
        assert result["seconds"] > 0 and result["bound"] > 0 and result["models"] == 2
    activation = {
        name: r["shares"]["activation forward"] + r["shares"]["activation backward"]
        for name, r in (("relu", relu), ("costly", costly))
    }
    assert activation["costly"] > activation["relu"]
    assert relu["shares"]["matmul fwd"] + relu["shares"]["matmul bwd"] > 0.1


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import os\ndef activation_function(x):\n    return x\n", "exit"),  # refused by the policy
        ("def activation_function(x):\n    while True:\n        pass\n", "exit"),  # refused: an unbounded loop
    ],
)
def test_a_hostile_candidate_is_an_error_line_not_a_crash(suite, source, expected):
    result = bench_profile.run_child(request(suite, "hostile", source), timeout=60)
    assert result["error"].startswith(expected)
