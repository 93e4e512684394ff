"""The instruction-set benchmark (benchmarks/bench_fused_isa.py), short: every fusable program's
kernel is built and timed under each flag set the processor has, the sets agree on the values, and
the report's ratios come from those rows."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_fused_isa as bench  # noqa: E402

from actmine.candidate import fused  # noqa: E402
from actmine.evolve.seeds import SEED_EXPRESSIONS, program  # noqa: E402

pytestmark = pytest.mark.skipif(
    fused.compiler() is None or "avx2" not in fused.instruction_sets(), reason="needs a C compiler and AVX2"
)


def test_every_fusable_program_is_timed_under_every_set_and_they_agree(tmp_path, capsys):
    sources = [program(SEED_EXPRESSIONS[name]) for name in ("gelu_sine", "gelu_sinc_perturbation", "relu", "gmtu")]
    sets = fused.instruction_sets()
    x = torch.randn(4, 32, 16) * 2
    rows = bench.time_kernels(sources, sets, x, repeats=2, cache=tmp_path)
    assert [row["source"] for row in rows] == [sources[0], sources[1], sources[3]]  # ReLU: one op, no kernel
    for row in rows:
        assert set(row["seconds"]) == set(sets) and all(s > 0 for s in row["seconds"].values())
        assert row["differs"]["avx2"] == 0.0
        assert max(row["differs"].values()) < 1e-3
    assert len(list(tmp_path.glob("*.so"))) == 3 * len(sets)  # one library per program and set
    bench.report(rows, sets, x, relu=1e-4)
    out = capsys.readouterr().out
    assert "3 kernels" in out
    for name in sets:
        assert f"{name:>9}: median" in out
    assert "total ×1.00 vs avx2" in out.split("avx2: median")[1].splitlines()[0]
