"""The transfer runner and `actmine transfer`, with a tiny benchmark of this module's own.

`TinyBenchmark` trains a one-hidden-layer MLP on a fixed synthetic two-class problem (1000 points,
full-batch Adam): a real training in milliseconds whose accuracy depends on the activation. It is
registered only while a test needs it (the `tiny` fixture); the job processes import it from this
module (`TransferJob.benchmark_class`), which they can: spawned children get this process's
sys.path, where pytest put tests/, and a Dask worker's job process gets it as PYTHONPATH.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
from torch import nn

from actmine.candidate.probes import MESSAGE_LIMIT
from actmine.transfer import base, runner
from actmine.transfer.base import BenchmarkScore, DatasetMissing
from actmine.transfer.runner import (
    ERROR_FLOOR,
    LOG_RATIO_CLIP,
    JobBudget,
    TransferInputError,
    TransferJob,
    TransferLimits,
    TransferResult,
    execute_job,
    log_ratio,
    parse_options,
    run_transfer,
    summarise,
)

SECRET = "ACTMINE_TEST_TRANSFER_SECRET"


class TinyBenchmark:
    """Two interleaved classes in the plane; an MLP 2 → hidden → 2 with the activation in between."""

    name = "tiny"
    metric = "accuracy"

    def __init__(
        self,
        *,
        epochs: int = 30,
        hidden: int = 16,
        fail_seed: int | None = None,
        crash_activation: str | None = None,
        crash_text: str = "",
        probe_port: int | None = None,
    ):
        self.epochs = epochs
        self.hidden = hidden
        self.fail_seed = fail_seed
        self.crash_activation = crash_activation
        self.crash_text = crash_text  # written to stderr just before the crash
        self.probe_port = probe_port  # try to connect to 127.0.0.1:probe_port; details["reached"] says

    def check_data(self, data_dir: Path) -> None:
        marker = Path(data_dir) / "tiny" / "READY"
        if not marker.is_file():
            raise DatasetMissing(f"tiny data not found: looked for {marker}; create it with `touch {marker}`")

    def run(self, make_activation, seed: int, data_dir: Path, device: str) -> BenchmarkScore:
        self.check_data(data_dir)
        if seed == self.fail_seed:
            raise RuntimeError(f"boom on seed {seed}")
        activation = make_activation()
        if self.crash_activation and type(activation).__name__.lower() == self.crash_activation:
            sys.stderr.write(self.crash_text)
            sys.stderr.flush()
            os._exit(3)  # the process dies, as under the out-of-memory killer
        generator = torch.Generator().manual_seed(1234)  # the same data for every job
        x = torch.rand(1000, 2, generator=generator) * 4 - 2
        y = ((x[:, 0].abs() + 0.5 * torch.sin(3 * x[:, 1])) > 1.0).long()  # a wavy band: balanced classes
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(2, self.hidden), activation, nn.Linear(self.hidden, 2))
        # Adam by hand: torch.optim's first step imports torch._dynamo, seconds per job process
        params = list(model.parameters())
        moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
        for step in range(1, self.epochs + 1):  # full batch: one step per epoch
            loss = nn.functional.cross_entropy(model(x[:400]), y[:400])
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g, (m, v) in zip(params, grads, moments):
                    m.mul_(0.9).add_(g, alpha=0.1)
                    v.mul_(0.999).addcmul_(g, g, value=0.001)
                    p -= 0.05 * (m / (1 - 0.9**step)) / ((v / (1 - 0.999**step)).sqrt() + 1e-8)
        with torch.no_grad():
            accuracy = (model(x[400:]).argmax(1) == y[400:]).float().mean().item()
        reached = None
        if self.probe_port is not None:
            try:
                socket.create_connection(("127.0.0.1", self.probe_port), timeout=5).close()
                reached = True
            except OSError:
                reached = False
        return BenchmarkScore(
            accuracy,
            self.metric,
            {
                "epochs": self.epochs,
                "pid": os.getpid(),
                "secret": os.environ.get(SECRET),
                "threads": torch.get_num_threads(),
                "nan": math.nan,
                "reached": reached,
                "cwd": os.getcwd(),
                "home": os.environ.get("HOME"),
                "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
            },
        )


@pytest.fixture()
def tiny():
    """TinyBenchmark registered for the test, removed after."""
    base.register_benchmark(TinyBenchmark)
    yield TinyBenchmark
    base._BENCHMARKS.pop("tiny", None)


@pytest.fixture()
def data_dir(tmp_path):
    directory = tmp_path / "data"
    (directory / "tiny").mkdir(parents=True)
    (directory / "tiny" / "READY").touch()
    return directory


def run_cli(capsys, *argv):
    from actmine.cli import main  # here, not at the top: job processes import this module

    code = main(["transfer", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def journal(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


# -- the summary ---------------------------------------------------------------------------------


def result(activation, seed, score, benchmark="b", ok=True):
    if not ok:
        return TransferResult(
            activation, benchmark, seed, ok=False, metric="accuracy", error={"code": "job_error", "message": "boom"}
        )
    return TransferResult(activation, benchmark, seed, ok=True, score=score, metric="accuracy")


def test_summarise_against_hand_computed_numbers():
    rows = summarise(
        [
            result("relu", 0, 0.90),
            result("relu", 1, 0.80),
            result("relu", 2, 0.85),
            result("gelu", 0, 0.95),
            result("gelu", 1, 0.92),
            result("gelu", 2, None, ok=False),
        ]
    )
    relu, gelu = rows
    assert [r["activation"] for r in rows] == ["relu", "gelu"]
    # ReLU: mean 0.85; deviations ±0.05 and 0 → sample variance (0.0025 + 0.0025) / 2 → std 0.05
    assert relu["n"] == 3 and relu["failed"] == 0 and relu["metric"] == "accuracy"
    assert relu["mean"] == pytest.approx(0.85) and relu["std"] == pytest.approx(0.05)
    assert relu["log_ratio_vs_relu"] == 0.0 and relu["log_ratio_std"] == 0.0
    # GELU: seeds 0 and 1 scored, 2 failed. Mean 0.935, std |0.95 − 0.92| / √2.
    assert gelu["n"] == 2 and gelu["failed"] == 1
    assert gelu["mean"] == pytest.approx(0.935) and gelu["std"] == pytest.approx(0.03 / math.sqrt(2))
    # Paired by seed: ln(0.05 / 0.10) = ln 0.5 and ln(0.08 / 0.20) = ln 0.4.
    assert gelu["log_ratio_vs_relu"] == pytest.approx((math.log(0.5) + math.log(0.4)) / 2)
    assert gelu["log_ratio_std"] == pytest.approx(abs(math.log(0.5) - math.log(0.4)) / math.sqrt(2))


def test_summarise_edge_cases():
    rows = summarise(
        [
            result("relu", 0, 0.9, "b1"),
            result("gelu", 0, 0.9, "b1"),
            result("gelu", 1, 0.8, "b1"),
            result("gelu", 0, 0.7, "b2"),
        ]
    )
    by = {(r["activation"], r["benchmark"]): r for r in rows}
    # only the seed both scored counts; one pair has no std
    assert by["gelu", "b1"]["log_ratio_vs_relu"] == 0.0 and by["gelu", "b1"]["log_ratio_std"] is None
    assert by["relu", "b1"]["std"] is None
    assert by["gelu", "b2"]["log_ratio_vs_relu"] is None  # no ReLU on b2
    # a perfect score: the error is floored, the log-ratio clipped
    assert log_ratio(1.0, 0.9) == -LOG_RATIO_CLIP
    assert log_ratio(0.9, 1.0 - ERROR_FLOOR / 2) == LOG_RATIO_CLIP
    assert log_ratio(0.9, 0.8) == pytest.approx(math.log(0.1 / 0.2))
    # scores outside [0, 1] (higher is better): −ln(score / ReLU's)
    rows = summarise([result("relu", 0, 2.0), result("gelu", 0, 4.0)])
    assert rows[1]["log_ratio_vs_relu"] == pytest.approx(-math.log(2.0))
    # a later result for the same job replaces an earlier one
    rows = summarise([result("relu", 0, 0.5), result("relu", 0, 0.7)])
    assert rows[0]["n"] == 1 and rows[0]["mean"] == pytest.approx(0.7)


def test_result_round_trip_and_validation():
    ok = result("gelu", 1, 0.9)
    assert TransferResult.from_dict(json.loads(json.dumps(ok.to_dict()))) == ok
    failed = result("gelu", 2, None, ok=False)
    assert TransferResult.from_dict(failed.to_dict()) == failed
    for broken in (
        {**ok.to_dict(), "score": None},
        {**ok.to_dict(), "score": float("nan")},
        {**ok.to_dict(), "seed": "1"},
        {**failed.to_dict(), "error": {"code": 3}},
        {"activation": "gelu"},
        [1, 2],
    ):
        with pytest.raises(ValueError):
            TransferResult.from_dict(broken)
    job = TransferJob("gelu", "tiny", 0, {"epochs": 3})
    assert TransferJob.from_dict(job.to_dict()) == job
    assert job.key != TransferJob("gelu", "tiny", 0, {"epochs": 4}).key != TransferJob("gelu", "tiny", 1).key


def test_parse_options():
    assert parse_options(
        ["tiny.epochs=3", "tiny.hidden=4", "clrs.algorithms=[bfs, dfs]", "x.lr=1e-3", "x.flag=true", "x.name=none"]
    ) == {
        "tiny": {"epochs": 3, "hidden": 4},
        "clrs": {"algorithms": ["bfs", "dfs"]},
        "x": {"lr": 1e-3, "flag": True, "name": "none"},
    }
    for bad in ("epochs=3", "tiny.epochs", ".epochs=3", "tiny.=3", "tiny.a=[1"):
        with pytest.raises(TransferInputError):
            parse_options([bad])


def test_execute_job_in_process_reports_errors_instead_of_raising(tiny, data_dir):
    job = TransferJob("relu", "tiny", 0, {"epochs": 5}, benchmark_class=f"{__name__}:TinyBenchmark")
    done = TransferResult.from_dict(execute_job(job, data_dir, "cpu"))
    assert done.ok and 0.0 <= done.score <= 1.0 and done.details["epochs"] == 5
    assert done.details["nan"] is None  # results are strict JSON
    boom = TransferResult.from_dict(execute_job(TransferJob("relu", "tiny", 1, {"fail_seed": 1}), data_dir, "cpu"))
    assert not boom.ok and boom.error == {"code": "job_error", "message": "RuntimeError: boom on seed 1"}
    wrong = TransferJob("cand", "tiny", 0, source="def activation_function(x):\n    return x.sum()\n")
    refused = TransferResult.from_dict(execute_job(wrong, data_dir, "cpu"))
    assert refused.error["code"] == "candidate" and "shape" in refused.error["message"]
    missing = TransferResult.from_dict(execute_job(job, data_dir / "nowhere", "cpu"))
    assert missing.error["code"] == "dataset_missing"


# -- the figure ----------------------------------------------------------------------------------


@pytest.fixture()
def closed_figures(monkeypatch):
    """The figures `plot_log_ratios` drew, kept when it closes them (their artists stay readable)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept, close = [], plt.close

    def keep_and_close(fig=None):
        kept.append(fig)
        close(fig)

    monkeypatch.setattr(plt, "close", keep_and_close)
    return kept


def drawn_bars(fig) -> dict[str, list[tuple[float, float, float]]]:
    """Per legend label, each bar's (centre x, height, error bar's half length)."""
    from matplotlib.container import BarContainer

    bars = {}
    for container in fig.axes[0].containers:
        if not isinstance(container, BarContainer):
            continue
        segments = container.errorbar.lines[2][0].get_segments() if container.errorbar else []
        bars[container.get_label()] = [
            (round(p.get_x() + p.get_width() / 2, 9), p.get_height(), (seg[1][1] - seg[0][1]) / 2)
            for p, seg in zip(container.patches, segments)
        ]
    return bars


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def summary_row(activation, benchmark, ratio, std):
    return {
        "activation": activation,
        "benchmark": benchmark,
        "metric": "accuracy",
        "n": 2,
        "failed": 0,
        "mean": 0.9,
        "std": 0.01,
        "log_ratio_vs_relu": ratio,
        "log_ratio_std": std,
    }


def test_the_figure_has_a_bar_per_activation_and_benchmark(closed_figures, tmp_path):
    rows = [
        summary_row("relu", "b1", 0.0, 0.0),
        summary_row("gelu", "b1", -0.5, 0.25),
        summary_row("tanh", "b1", 0.75, None),
        summary_row("relu", "b2", 0.0, 0.0),
        summary_row("gelu", "b2", 0.125, 0.0625),
        summary_row("tanh", "b2", None, None),
    ]
    path = runner.plot_log_ratios(rows, tmp_path / "deep" / "figure.png")
    assert path == tmp_path / "deep" / "figure.png"
    (fig,) = closed_figures
    ax = fig.axes[0]
    # two activations: bars 0.4 wide, GELU's left of each benchmark's tick, tanh's right; no ReLU
    # bar (it is the zero line), no tanh bar on b2 (no log-ratio), a missing std drawn as 0
    assert drawn_bars(fig) == {"gelu": [(-0.2, -0.5, 0.25), (0.8, 0.125, 0.0625)], "tanh": [(0.2, 0.75, 0.0)]}
    assert [t.get_text() for t in ax.get_xticklabels()] == ["b1", "b2"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["gelu", "tanh"]
    assert any(
        tuple(line.get_xdata()) == (0, 1) and tuple(line.get_ydata()) == (0, 0) for line in ax.get_lines()
    )  # ReLU: the zero line across the axes
    assert ax.get_xlim() == (-0.6, 1.6)
    # 1.5 + 0.5 inch per bar, at least 4 inches, by 3.6: 100 dpi, trimmed to what is drawn
    assert tuple(fig.get_size_inches()) == (4.0, 3.6)
    width, height = png_size(path)
    assert 300 < width < 700 and 250 < height < 400


def test_the_figure_with_only_relu_says_so(closed_figures, tmp_path):
    runner.plot_log_ratios([summary_row("relu", "b1", 0.0, 0.0)], tmp_path / "only.png")
    (fig,) = closed_figures
    assert drawn_bars(fig) == {} and fig.axes[0].get_legend() is None
    assert [t.get_text() for t in fig.axes[0].texts] == ["only ReLU: nothing to compare"]


def test_the_figure_grows_with_the_bars_up_to_16_inches(closed_figures, tmp_path):
    wide = [summary_row(a, f"b{j}", 0.1, 0.0) for j in range(3) for a in ("relu", "a1", "a2", "a3")]
    runner.plot_log_ratios(wide, tmp_path / "wide.png")  # 3 benchmarks x 3 activations
    widest = wide + [summary_row(f"x{i}", "b0", 0.1, 0.0) for i in range(8)]
    runner.plot_log_ratios(widest, tmp_path / "widest.png")  # 3 x 11: 18 inches, capped
    assert tuple(closed_figures[0].get_size_inches()) == (1.5 + 0.5 * 3 * 3, 3.6)
    assert tuple(closed_figures[1].get_size_inches()) == (16.0, 3.6)


# -- the command -----------------------------------------------------------------------------------


def test_cli_run_writes_the_table_results_and_figure_and_resumes(
    tiny, data_dir, tmp_path, capsys, monkeypatch, closed_figures
):
    monkeypatch.setenv(SECRET, "hunter2")  # must not reach the job processes
    out = tmp_path / "out"
    argv = [
        "--activations",
        "gelu,tanh",
        "--benchmarks",
        "tiny",
        "--seeds",
        "2",
        "--epochs",
        "30",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "--workers",
        "2",
        "--timeout",
        "300",
        "--memory-mb",
        "3000",
    ]
    code, stdout, stderr = run_cli(capsys, *argv)
    assert code == 0, stderr
    assert "added relu" in stderr
    # the table: rows = activations, a column per benchmark, "mean ± std (log-ratio)"
    assert "tiny (accuracy)" in stdout and "relu" in stdout and "±" in stdout
    assert "(+" in stdout or "(-" in stdout  # the log-ratios
    document = json.loads((out / "results.json").read_text())
    assert [a["name"] for a in document["activations"]] == ["relu", "gelu", "tanh"]
    assert document["added_relu"] is True and document["seeds"] == [0, 1] and document["resumed"] == 0
    assert document["options"] == {"tiny": {"epochs": 30}}
    assert document["limits"] == {"tiny": {"timeout_s": 300, "cpu_s": 300, "memory_mb": 3000}}
    assert all(j["sandbox"]["memory_mb"] == 3000 and j["sandbox"]["timeout_s"] == 300 for j in document["jobs"])
    jobs = document["jobs"]
    assert len(jobs) == 6 and all(j["ok"] for j in jobs)
    assert [(j["activation"], j["seed"]) for j in jobs] == [(a, s) for a in ("relu", "gelu", "tanh") for s in (0, 1)]
    details = [j["details"] for j in jobs]
    assert all(
        d["pid"] != os.getpid() and d["secret"] is None and d["threads"] == 1 and d["epochs"] == 30 for d in details
    )  # child processes, scrubbed, one thread
    scores = {j["activation"]: [] for j in jobs}
    for j in jobs:
        scores[j["activation"]].append(j["score"])
    assert len({tuple(s) for s in scores.values()}) == 3  # the activation matters
    with (out / "summary.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == [
        "activation",
        "benchmark",
        "metric",
        "n",
        "mean",
        "std",
        "log_ratio_vs_relu",
        "log_ratio_std",
    ]
    assert [r["activation"] for r in rows] == ["relu", "gelu", "tanh"] and rows[0]["log_ratio_vs_relu"] == "0.0"
    gelu = rows[1]
    expected = sum(math.log((1 - g) / (1 - r)) for g, r in zip(scores["gelu"], scores["relu"])) / 2
    assert float(gelu["mean"]) == pytest.approx(sum(scores["gelu"]) / 2)
    assert float(gelu["log_ratio_vs_relu"]) == pytest.approx(expected)
    assert document["summary"][1]["log_ratio_vs_relu"] == pytest.approx(expected)
    # the figure: one bar per compared activation, at its log-ratio vs ReLU, with its std
    tanh = [math.log((1 - t) / (1 - r)) for t, r in zip(scores["tanh"], scores["relu"])]
    (fig,) = closed_figures
    bars = drawn_bars(fig)
    assert list(bars) == ["gelu", "tanh"] and [len(b) for b in bars.values()] == [1, 1]
    assert bars["gelu"][0][1] == pytest.approx(expected) and bars["tanh"][0][1] == pytest.approx(sum(tanh) / 2)
    assert bars["tanh"][0][2] == pytest.approx(abs(tanh[0] - tanh[1]) / math.sqrt(2))
    width, height = png_size(out / "transfer.png")
    assert 300 < width < 700 and 250 < height < 400  # 4 × 3.6 inches at 100 dpi, trimmed
    assert len(journal(out)) == 6

    # a third seed: only its three jobs run
    argv[5] = "3"
    code, stdout, stderr = run_cli(capsys, *argv)
    assert code == 0 and "6 of 9 jobs already done, 3 to run" in stderr
    assert len(journal(out)) == 9 and json.loads((out / "results.json").read_text())["resumed"] == 6
    # the same command again: nothing to run
    code, stdout, stderr = run_cli(capsys, *argv)
    assert code == 0 and "9 of 9 jobs already done, 0 to run" in stderr and len(journal(out)) == 9


def test_candidate_file_runs_in_the_child_and_a_failing_job_does_not_stop_the_run(tiny, data_dir, tmp_path, capsys):
    candidate = tmp_path / "swishy.py"
    candidate.write_text("def activation_function(x):\n    return x * torch.sigmoid(1.5 * x)\n")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        capsys,
        "--activations",
        f"relu,{candidate}",
        "--benchmarks",
        "tiny",
        "--seeds",
        "2",
        "--option",
        "tiny.fail_seed=1",
        "--option",
        "tiny.epochs=20",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "--workers",
        "1",
        "--quiet",
    )
    assert code == 1  # some jobs failed: the run finished and says so
    assert "added relu" not in stderr and "boom on seed 1" in stderr
    jobs = {(j["activation"], j["seed"]): j for j in json.loads((out / "results.json").read_text())["jobs"]}
    assert jobs["swishy", 0]["ok"] and jobs["relu", 0]["ok"]
    assert jobs["swishy", 0]["score"] != jobs["relu", 0]["score"]
    for name in ("relu", "swishy"):
        assert jobs[name, 1]["error"] == {"code": "job_error", "message": "RuntimeError: boom on seed 1"}
    assert "swishy" in stdout and "[1 failed]" in stdout
    rows = {r["activation"]: r for r in json.loads((out / "results.json").read_text())["summary"]}
    assert rows["swishy"]["n"] == 1 and rows["swishy"]["failed"] == 1
    # a rerun would retry the failed jobs only: the journal's ok results are what counts as done
    done = runner._read_done(out / "results.jsonl", lambda message: None)
    assert sorted((r.activation, r.seed) for r in done.values()) == [("relu", 0), ("swishy", 0)]


def test_a_job_whose_process_dies_fails_alone(tiny, data_dir, tmp_path):
    # One job at a time, each in its own process: gelu's process dies, the jobs before and after score.
    run = run_transfer(
        ["relu", "gelu", "tanh"],
        ["tiny"],
        1,
        options={"tiny": {"crash_activation": "gelu", "epochs": 5}},
        data_dir=data_dir,
        out=tmp_path / "out",
        workers=1,
        progress=False,
        notify=lambda message: None,
    )
    by = {r.activation: r for r in run.results}
    assert by["relu"].ok and by["tanh"].ok
    assert not by["gelu"].ok and by["gelu"].error["code"] == "worker_died"
    assert "ended with status 3 before answering" in by["gelu"].error["message"]
    assert not run.ok and (tmp_path / "out" / "results.json").is_file()


def test_a_jobs_output_never_reaches_the_terminal_and_a_dead_jobs_last_output_is_escaped(
    tiny, data_dir, tmp_path, capfd
):
    loud = tmp_path / "loud.py"  # its print would set the terminal's title and colour
    loud.write_text('def activation_function(x):\n    print("\\x1b]0;TITLE\\x07\\x1b[31mLOUD")\n    return F.gelu(x)\n')
    code, stdout, stderr = run_cli(
        capfd,
        "--activations",
        f"{loud},gelu",
        "--benchmarks",
        "tiny",
        "--seeds",
        "1",
        "--option",
        "tiny.crash_activation=gelu",
        "--option",
        'tiny.crash_text="\\e[2Jlast words"',  # YAML: \e is ESC
        "--option",
        "tiny.epochs=3",
        "--data-dir",
        str(data_dir),
        "--out",
        str(tmp_path / "out"),
        "--workers",
        "1",
        "--quiet",
    )
    assert code == 1, stderr  # gelu's job died
    assert "LOUD" not in stdout + stderr and "\x1b" not in stdout + stderr
    jobs = {j["activation"]: j for j in json.loads((tmp_path / "out" / "results.json").read_text())["jobs"]}
    assert jobs["loud"]["ok"]
    message = jobs["gelu"]["error"]["message"]
    assert jobs["gelu"]["error"]["code"] == "worker_died" and message.endswith("last words")
    assert "\\x1b[2J" in message and "\x1b" not in message  # quoted, escaped


def test_hostile_candidate_is_refused_before_any_job(tiny, data_dir, tmp_path, capsys):
    hostile = tmp_path / "evil.py"
    hostile.write_text("import os\n\ndef activation_function(x):\n    return x\n")
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        capsys,
        "--activations",
        f"gelu,{hostile}",
        "--benchmarks",
        "tiny",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
    )
    assert code == 2 and "evil.py" in stderr and "[import]" in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--activations", "relu,nosuch"], "unknown activation 'nosuch'"),
        (["--activations", "missing.py"], "does not exist"),
        (["--benchmarks", "tiny,tinny"], "unknown benchmark 'tinny'"),
        (["--option", "tiny.nope=1"], "tiny has no option 'nope'; its options: epochs, hidden, fail_seed"),
        (["--option", "digits.epochs=1"], "'digits' is not among the benchmarks"),
        (["--option", "tiny.hidden=[1"], "not valid YAML"),
        (["--option", "tiny:epochs=1"], "write BENCHMARK.KEY=VALUE"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--scheduler", "tcp://127.0.0.1:1"], "needs the 'dask' executor"),
        (["--workers", "100000"], "--workers 100,000 is more than"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tiny, data_dir, tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    code, _, stderr = run_cli(capsys, "--benchmarks", "tiny", "--data-dir", str(data_dir), "--out", str(out), *argv)
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_epochs_needs_a_benchmark_with_an_epochs_option(tiny, data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(TinyBenchmark, "__init__", lambda self, *, hidden=8: None)
    with pytest.raises(TransferInputError, match="none of the benchmarks"):
        run_transfer(["relu"], ["tiny"], 1, epochs=3, data_dir=data_dir, out=tmp_path / "out")


def test_missing_dataset_is_exit_2_with_where_and_how(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, stderr = run_cli(capsys, "--benchmarks", "tiny", "--data-dir", str(tmp_path / "empty"), "--out", str(out))
    assert code == 2
    assert f"looked for {tmp_path / 'empty' / 'tiny' / 'READY'}" in stderr and "create it with" in stderr
    assert not out.exists()


def test_data_dir_defaults_to_the_environment(tiny, data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ACTMINE_DATA_DIR", str(tmp_path / "elsewhere"))
    code, _, stderr = run_cli(capsys, "--benchmarks", "tiny", "--out", str(tmp_path / "out"))
    assert code == 2 and str(tmp_path / "elsewhere" / "tiny" / "READY") in stderr


def test_dask_executor_on_a_local_cluster(tiny, data_dir, tmp_path, capsys, monkeypatch, loopback_dask_cluster):
    cluster = loopback_dask_cluster
    monkeypatch.setenv(SECRET, "hunter2")  # must not reach the job processes

    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        capsys,
        "--activations",
        "relu",
        "--benchmarks",
        "tiny",
        "--seeds",
        "1",
        "--epochs",
        "10",
        "--executor",
        "dask",
        "--scheduler",
        cluster.scheduler_address,
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "--timeout",
        "60",
        "--memory-mb",
        "3000",
    )
    assert code == 0, stderr
    jobs = json.loads((out / "results.json").read_text())["jobs"]
    assert [j["activation"] for j in jobs] == ["relu"]  # one job: each costs a process start
    assert all(j["ok"] and j["details"]["pid"] != os.getpid() for j in jobs)
    assert all(j["details"]["secret"] is None and j["details"]["threads"] == 1 for j in jobs)
    # the same limits as locally, applied by the job's process on the Dask worker
    assert all(
        j["sandbox"]["timeout_s"] == 60
        and j["sandbox"]["cpu_s"] == 60
        and j["sandbox"]["memory_mb"] == 3000
        and isinstance(j["sandbox"]["network_isolated"], bool)
        for j in jobs
    )
    assert "tiny (accuracy)" in stdout and (out / "transfer.png").is_file()
    # on a cluster without the GPU resource, --device cuda is refused before anything is submitted
    code, _, stderr = run_cli(
        capsys,
        "--benchmarks",
        "tiny",
        "--executor",
        "dask",
        "--scheduler",
        cluster.scheduler_address,
        "--device",
        "cuda",
        "--data-dir",
        str(data_dir),
        "--out",
        str(tmp_path / "gpu"),
    )
    assert code == 2 and "--resources GPU=1" in stderr


# -- the limits of a job's process -----------------------------------------------------------------

# Policy-bounded (10⁸ iterations of tensor ops) but hours of work: only a limit ends it.
SLOW = """def activation_function(x):
    y = x
    for i in range(10000):
        for j in range(10000):
            y = torch.tanh(y) * 1.0
    return y
"""
# 1.5 GiB at the first call: beyond a small address-space limit, harmless without one.
HOG = """def activation_function(x):
    big = torch.ones(1 << 27, 3)
    return x + 0.0 * big.sum()
"""


@pytest.fixture()
def listener():
    """A TCP server on the loopback interface: a job that can reach the network reaches it."""
    server = socket.create_server(("127.0.0.1", 0))
    yield server.getsockname()[1]
    server.close()


def test_a_hanging_candidate_times_out_alone_and_jobs_have_no_network(tiny, data_dir, tmp_path, listener):
    slow = tmp_path / "slow.py"
    slow.write_text(SLOW)
    out = tmp_path / "out"
    # A wall clock far above what a tiny job takes (about a second), far below what slow.py needs.
    run = run_transfer(
        ["relu", str(slow)],
        ["tiny"],
        1,
        options={"tiny": {"epochs": 5, "probe_port": listener}},
        data_dir=data_dir,
        out=out,
        workers=2,
        progress=False,
        notify=lambda message: None,
        limits=TransferLimits(timeout_s=12, cpu_s=0, memory_mb=0),
    )
    by = {r.activation: r for r in run.results}
    assert by["relu"].ok
    assert not by["slow"].ok and by["slow"].error["code"] == "timeout"
    assert "12 s of wall-clock time" in by["slow"].error["message"] and "--timeout" in by["slow"].error["message"]
    assert by["slow"].sandbox["timeout_s"] == 12 and by["slow"].seconds >= 12
    assert by["relu"].sandbox == {
        "network_isolated": by["relu"].sandbox["network_isolated"],
        "timeout_s": 12,
        "cpu_s": None,
        "memory_mb": None,
    }
    # the journal holds both, the timeout like any other failure
    assert {(j["activation"], j["ok"]) for j in journal(out)} == {("relu", True), ("slow", False)}
    # No network: where the kernel allows a namespace the job cannot reach the loopback server,
    # and where it does not, the result says so (the static policy is then the only barrier).
    isolated = by["relu"].sandbox["network_isolated"]
    assert isinstance(isolated, bool) and by["relu"].details["reached"] is (not isolated)
    # its own temporary directory as cwd and HOME, removed after the job
    details = by["relu"].details
    assert details["cwd"] == details["home"] and "actmine-transfer-" in details["cwd"]
    assert not Path(details["cwd"]).exists()


SWISH = "def activation_function(x):\n    return x * torch.sigmoid(1.5 * x)\n"


@pytest.fixture()
def pack(tmp_path):
    """A generated program file (as `actmine export` writes) with a fine program and a memory hog."""
    from actmine.language.files import ProgramEntry, render_program_file

    path = tmp_path / "pack.py"
    path.write_text(
        render_program_file(
            [ProgramEntry("mined_1", "Mined1", SWISH), ProgramEntry("mined_2", "Mined2", HOG)],
            "two programs for a test",
        )
    )
    return path


def test_memory_and_cpu_limits_fail_their_job_alone(tiny, data_dir, tmp_path, pack):
    slow = tmp_path / "slow.py"
    slow.write_text(SLOW)
    # 1536 MB: a tiny job maps about 700 MB. 5 CPU seconds: a tiny job uses about 2 (imports
    # included). The wall clock only backs these up: a job that reaches it shows a limit that failed.
    # The hog is a pack entry: a program like any candidate file, run under the same limits.
    limits = TransferLimits(timeout_s=120, cpu_s=5, memory_mb=1536)
    run = run_transfer(
        ["relu", str(slow), f"{pack}:mined_2"],
        ["tiny"],
        1,
        options={"tiny": {"epochs": 5}},
        data_dir=data_dir,
        out=tmp_path / "out",
        workers=3,
        progress=False,
        notify=lambda message: None,
        limits=limits,
    )
    by = {r.activation: r for r in run.results}
    assert by["relu"].ok and by["relu"].sandbox["memory_mb"] == 1536 and by["relu"].sandbox["cpu_s"] == 5
    assert by["mined_2"].error["code"] == "memory_limit", by["mined_2"].error
    assert "address-space limit is 1536 MB" in by["mined_2"].error["message"]
    assert by["slow"].error["code"] == "cpu_limit", by["slow"].error
    assert "5 s of CPU time" in by["slow"].error["message"] and "--cpu-time" in by["slow"].error["message"]


def test_local_jobs_each_get_one_gpu_round_robin(tiny, data_dir, monkeypatch):
    # device="cuda" with two GPUs listed: each running job sees one of them, and no address-space
    # limit is set (CUDA maps far more virtual memory than it uses). The tiny model stays on the CPU.
    from actmine.executors import job_pool

    monkeypatch.setattr(job_pool, "visible_gpus", lambda: ["3", "5"])
    jobs = [
        TransferJob(a, "tiny", 0, {"epochs": 2}, benchmark_class=f"{__name__}:TinyBenchmark") for a in ("relu", "gelu")
    ]
    limits = {"tiny": TransferLimits(timeout_s=120).resolve(TinyBenchmark(), "tiny", "cuda")}
    assert limits["tiny"]["memory_mb"] is None
    results = []
    runner.run_jobs(jobs, str(data_dir), "cuda", limits, results.append, "local", 2)
    assert all(r.ok for r in results) and len(results) == 2
    assert {r.details["gpu"] for r in results} == {"3", "5"}
    assert all(r.sandbox["memory_mb"] is None and r.sandbox["timeout_s"] == 120 for r in results)


def test_default_limits_follow_the_benchmark_and_its_options():
    from actmine.transfer.vision import Cifar10, Digits

    digits = TransferLimits().resolve(Digits(epochs=12), "digits", "cpu")
    longer = TransferLimits().resolve(Digits(epochs=120), "digits", "cpu")
    assert digits["memory_mb"] == 4096 and digits["cpu_s"] == digits["timeout_s"]
    assert digits["timeout_s"] < 600 < longer["timeout_s"]  # seconds of work: minutes of limit
    cifar = TransferLimits().resolve(Cifar10(epochs=30), "cifar10", "cuda")
    assert cifar["memory_mb"] is None and cifar["timeout_s"] > 30 * 60  # never an address-space limit on CUDA
    assert cifar["cpu_s"] == cifar["timeout_s"] * (os.cpu_count() or 1)
    smaller = TransferLimits().resolve(Cifar10(epochs=30, limit_train=5000), "cifar10", "cpu")
    assert smaller["timeout_s"] < TransferLimits().resolve(Cifar10(epochs=30), "cifar10", "cpu")["timeout_s"]
    # explicit values win, 0 is no limit; a benchmark may carry its own budget
    assert TransferLimits(timeout_s=0, cpu_s=7, memory_mb=0).resolve(Digits(), "digits", "cpu") == {
        "timeout_s": None,
        "cpu_s": 7,
        "memory_mb": None,
    }
    assert TransferLimits(timeout_s=0).resolve(Digits(), "digits", "cpu")["cpu_s"] is None
    TinyBenchmark.job_budget = JobBudget({"cpu": 2.0}, memory_mb=1000, base_s=10.0)
    try:
        assert TransferLimits().resolve(TinyBenchmark(epochs=5), "tiny", "cpu") == {
            "timeout_s": 20.0,
            "cpu_s": 20.0,
            "memory_mb": 1000,
        }
    finally:
        del TinyBenchmark.job_budget
    for bad in (-1, float("nan"), "10", True):
        with pytest.raises(TransferInputError, match="≥ 0"):
            TransferLimits(timeout_s=bad)


@given(st.text(max_size=3 * MESSAGE_LIMIT // 2))
@settings(max_examples=200, deadline=None)
def test_messages_from_a_job_are_printable_bounded_and_stable(text):
    once = runner._printable(text)
    assert runner._printable(once) == once
    # what a job's process answers goes through it, in the parent
    failed = TransferResult.from_dict(
        {"activation": "a", "benchmark": "b", "seed": 0, "ok": False, "error": {"code": "job_error", "message": text}}
    )
    assert failed.error["message"] == once
    assert len(once) <= MESSAGE_LIMIT + 64
    assert all(c.isprintable() or c in "\n\t" for c in once)
    if len(text) <= MESSAGE_LIMIT and all(c.isprintable() for c in text):
        assert once == text


def test_a_pack_entry_is_an_untrusted_program_read_as_data(tiny, pack, tmp_path):
    spec = runner.resolve_activation(f"{pack}:mined_1")
    assert (spec.name, spec.kind, spec.source, spec.reference) == ("mined_1", "pack", SWISH, None)
    job = TransferJob(spec.name, "tiny", 0, source=spec.source)
    assert job.key != TransferJob(spec.name, "tiny", 0, source=HOG).key  # the program is the job's identity
    # an entry the policy refuses stops the run before any job, like a refused file
    from actmine.language.files import ProgramEntry, render_program_file

    hostile = tmp_path / "hostile.py"
    hostile.write_text(render_program_file([ProgramEntry("mined_9", "Mined9", "import os\n\n" + SWISH)], "x"))
    with pytest.raises(TransferInputError, match=r"mined_9' refused \[import\]"):
        runner.resolve_activation(f"{hostile}:mined_9")
    # a pack with code added is refused unread: resolving it runs nothing
    marker = tmp_path / "ran"
    edited = tmp_path / "edited.py"
    edited.write_text(pack.read_text() + f"\nimport os\nos.system('touch {marker}')\n")
    with pytest.raises(TransferInputError, match="refused"):
        runner.resolve_activation(f"{edited}:mined_1")
    with pytest.raises(TransferInputError, match="unknown_program"):
        runner.resolve_activation(f"{pack}:mined_3")
    # a job naming a program file instead of carrying its source is refused in the child too
    refused = TransferResult.from_dict(
        execute_job(TransferJob("x", "tiny", 0, reference=f"{pack}:mined_1"), tmp_path, "cpu")
    )
    assert refused.error["code"] == "candidate" and "names a program file" in refused.error["message"]
    assert not marker.exists()


def test_a_benchmark_defined_in_the_script_being_run_is_refused():
    # a job's process is a fresh interpreter: it cannot import the parent's __main__
    scripted = type("Scripted", (), {"__module__": "__main__"})
    with pytest.raises(TransferInputError, match="importable module"):
        runner._class_path(scripted)


def test_a_half_written_journal_line_is_ended_before_new_records(tmp_path):
    """A run killed mid-write leaves a partial last line: the next record must start on a line of
    its own, so that it is read back on the following resume."""
    journal = tmp_path / "results.jsonl"
    journal.write_text('{"activation": "relu", "benchmark": "digits", "seed": 0, "ok": tr')
    runner.end_partial_line(journal)
    with journal.open("a", encoding="utf-8") as stream:
        stream.write(json.dumps({"next": 1}) + "\n")
    lines = journal.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1]) == {"next": 1}
    runner.end_partial_line(journal)  # a complete journal is left as it is
    assert journal.read_text().splitlines() == lines


def test_on_a_terminal_the_progress_bar_counts_jobs_and_shows_their_names_as_text():
    import io

    from rich.console import Console

    out = io.StringIO()
    bar = runner._Progress(2, True, Console(file=out, force_terminal=True, width=120))
    assert bar.bar is not None
    bar.advance(
        TransferResult.from_dict(
            {
                "activation": "[bold]x[/bold]",
                "benchmark": "tiny",
                "seed": 0,
                "ok": True,
                "score": 0.5,
                "metric": "accuracy",
            }
        )
    )
    bar.close()
    shown = out.getvalue()
    assert "transfer" in shown and "1/2" in shown and "[bold]x[/bold]" in shown  # markup shown, not applied
