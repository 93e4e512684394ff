"""Does a long search stay within bounded resources? A 1,000-evaluation soak, sampled from /proc.

    python benchmarks/soak.py [--budget 1000] [--llm-budget 500] [--workers 2] [--interval 2]
                              [--warmup 150] [--out soak-out]

Two searches run one after the other, each as its own `actmine search` process (the controller)
on a lab small enough that an evaluation takes about a second (one task, one seed, `--steps`):

1. `symbolic`: the symbolic mutator, `--budget` evaluations (the soak proper: one controller,
   one run, at least 1,000 evaluations);
2. `llm`: the LLM mutator against the scripted OpenAI-compatible server (`tests/chat_server.py`,
   real HTTP on 127.0.0.1, in this process), `--llm-budget` evaluations, so that the client, its
   connection pool, the proposal threads and the `llm_calls` writes are soaked too. Its script
   mixes distinct valid programs with a few refused ones, answers without code and server errors.

Every `--interval` seconds this process reads, for the controller and every process below it (the
sandbox workers; below them, "helpers": a worker's C compiler for a fused kernel), the resident memory (`VmRSS` in /proc/PID/status), the threads (`Threads`), the
state (a zombie is `Z`) and the open file descriptors (the entries of /proc/PID/fd), and the
number of finished evaluations (the run's database, read-only). It writes:

- `OUT/soak.csv`: one row per process per sample (phase, seconds, evaluations, role, pid, rss_kb,
  fds, threads, state);
- `OUT/soak.png`: RSS, fds and threads over evaluations, the controller and the workers;

and prints, per phase and role, the figures at the start, after the warm-up and at the end of the
search loop, the least-squares slope after the warm-up per 100 evaluations, and a verdict:

- RSS: slope below `RSS_SLOPE_BOUND_MB` (1 MiB) per 100 evaluations;
- fds and threads: flat, i.e. the most held in the second half after the warm-up is no more than
  the most held in the first half plus `FLAT_TOLERANCE` (workers: the largest worker), where a
  sample's held value is the least of it and the `HELD_SAMPLES` − 1 samples before it (a spike
  shorter than that is timing, not growth);
- a worker's RSS: judged by its envelope (`envelope`: each worker's peak), since workers are replaced;
- no process left a zombie (seen so at two samples), and no worker alive after its controller exited.

Workers are replaced every `sandbox.max_tasks_per_worker` evaluations (50 by default), which
bounds a worker's growth by construction; `--max-tasks-per-worker 100000` keeps each worker for
the whole run, so that a per-evaluation leak inside a worker would show as a slope.
The held-out check and the report after the loop are sampled too (the rows at `evaluations` =
budget, right of the dashed line in the plot), but not part of the slopes: they are one-off work,
not growth per evaluation.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from chat_server import ChatServer  # noqa: E402

RSS_SLOPE_BOUND_MB = 1.0  # MiB per 100 evaluations after the warm-up
# fds and threads are flat when the most seen in the second half after the warm-up exceeds the
# most seen in the first half by at most this: a model call's socket (the scripted server closes
# each connection, so there are 0 to `concurrency` of them at a sample) and a worker being
# replaced come and go with timing; a leak of one per evaluation, or per 100, exceeds it.
FLAT_TOLERANCE = 2
# ... and are judged by the level they held for this many consecutive samples (`held`): one sample
# in the second half alone read as growth in a clean-clone CI run (the controller at 13 fds after
# the warm-up and at the end, 18 at one sample: most likely a worker's pipes being replaced while
# model calls' sockets were open); a leak keeps its level, so it still shows.
HELD_SAMPLES = 3
FIELDS = ("phase", "seconds", "evaluations", "role", "pid", "rss_kb", "fds", "threads", "state")

# One task, one seed: with 300 training steps an evaluation costs about a second on one core.
SOAK_SUITE = {"name": "soak", "seeds": [0], "tasks": [{"family": "polynomial", "dim": 1, "seed": 0}]}
SOAK_HELDOUT = {"name": "soak-heldout", "seeds": [7], "tasks": [{"family": "polynomial", "dim": 1, "seed": 9}]}


# -- the configuration ------------------------------------------------------------------------------


def soak_config(
    directory: Path,
    budget: int,
    workers: int = 2,
    steps: int = 10,
    mutator: dict | None = None,
    max_tasks_per_worker: int = 50,
) -> Path:
    """Write the soak's suite files and config under `directory`; return the config's path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "soak-suite.yaml").write_text(yaml.safe_dump(SOAK_SUITE))
    (directory / "soak-heldout.yaml").write_text(yaml.safe_dump(SOAK_HELDOUT))
    config = {
        "search": {
            "budget": budget,
            "time_limit": 0,
            "islands": 2,
            "migration_interval": 20,
            "heldout_top": 1,
            "initial_programs": ["relu", "gelu"],
        },
        "mutator": mutator or {"kind": "symbolic"},
        "executor": {"workers": workers},
        "lab": {
            "suite": str(directory / "soak-suite.yaml"),
            "heldout_suite": str(directory / "soak-heldout.yaml"),
            "training_seeds": 1,
            "steps": steps,
        },
        "sandbox": {"timeout_s": 120, "cpu_s": 120, "memory_mb": 3072, "max_tasks_per_worker": max_tasks_per_worker},
    }
    path = directory / f"config-{(mutator or {}).get('kind', 'symbolic')}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def scripted_answers(count: int) -> list[Any]:
    """The scripted model's answers: distinct valid programs, with a refusal, an answer without
    code and a server error every so often (each path the controller takes with a model's answer)."""
    answers: list[Any] = []
    for i in range(count):
        a, b = 0.01 + 0.002 * i, 0.5 + 0.01 * (i % 97)
        if i % 20 == 7:
            answers.append(
                "A faster variant.\n```python\nimport os\ndef activation_function(x):\n    return torch.relu(x)\n```"
            )  # refused by the policy
        elif i % 20 == 13:
            answers.append("I would rather not write code today.")  # no code in the answer
        elif i % 20 == 17:
            answers.append({"status": 500, "retry_after": 0})  # a server error, retried
        else:
            answers.append(
                f"A GELU with a periodic term (amplitude {a:.3f}).\n```python\n"
                f"def activation_function(x: torch.Tensor) -> torch.Tensor:\n"
                f"    return F.gelu(x) + {a:.3f} * torch.sin({b:.2f} * x)\n```"
            )
    return answers


def llm_mutator(base_url: str) -> dict:
    return {
        "kind": "llm",
        "options": {
            "models": [{"name": "scripted", "base_url": base_url}],
            "concurrency": 2,
            "operators": {"mutate": 1},
            "max_retries": 2,
        },
    }


# -- sampling /proc ---------------------------------------------------------------------------------


@dataclass
class ProcessSample:
    pid: int
    start_ticks: int  # the process's start time (field 22 of /proc/PID/stat): pid + start is unique
    rss_kb: int
    fds: int
    threads: int
    state: str
    vm_kb: int = 0  # virtual size (VmSize): what the sandbox's memory limit (RLIMIT_AS) bounds


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return int(rest[1]), rest[0], int(rest[19])


def _below(root: int) -> list[tuple[int, int]]:
    """(pid, parent pid) of every process below `root` (children, grandchildren, ...), from one scan of /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry))
    found, stack = [], [root]
    while stack:
        parent = stack.pop()
        for child in children.get(parent, []):
            found.append((child, parent))
            stack.append(child)
    return found


def descendants(root: int) -> list[int]:
    """Every process below `root` (children, grandchildren, ...), from one scan of /proc."""
    return [pid for pid, _ in _below(root)]


def roles_below(root: int) -> list[tuple[str, int]]:
    """("worker", pid) for `root`'s children (the sandbox workers) and ("helper", pid) for the
    processes below them: a worker's C compiler (gcc, cc1, as, ld) lives a fraction of a second and
    opens a dozen files, so counted as a worker it would read as a leak of the worker's fds."""
    return [("worker" if parent == root else "helper", pid) for pid, parent in _below(root)]


def sample_process(pid: int) -> ProcessSample | None:
    """RSS, open fds, threads and state of one process; None when it ended meanwhile."""
    stat = _stat(pid)
    if stat is None:
        return None
    status: dict[str, str] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            status[key] = value.strip()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:  # it ended between the reads (a zombie has no fd directory either)
        fds = 0 if stat[1] == "Z" else -1
        if fds < 0:
            return None
    return ProcessSample(
        pid,
        stat[2],
        int(status.get("VmRSS", "0 kB").split()[0]),
        fds,
        int(status.get("Threads", "0")),
        stat[1],
        int(status.get("VmSize", "0 kB").split()[0]),
    )


def count_evaluations(run_dir: Path) -> int | None:
    """Finished evaluations of the run so far (read-only, as `actmine report` reads a running search)."""
    from actmine.evolve.database import ProgramDatabase

    path = run_dir / "programs.sqlite"
    if not path.is_file():
        return None
    try:
        with ProgramDatabase(path, readonly=True) as db:
            run = db.latest_run()
            return db.count(run["id"]) if run else 0
    except Exception:  # the controller is creating the file: try again at the next sample
        return None


@dataclass
class PhaseResult:
    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    returncode: int | None = None
    workers_seen: dict[int, int] = field(default_factory=dict)  # pid -> start ticks
    helpers_seen: dict[int, int] = field(default_factory=dict)  # a worker's own children (its C compiler)
    workers_left: list[int] = field(default_factory=list)  # alive after the controller exited (or helpers)
    zombie_samples: dict[int, int] = field(default_factory=dict)  # pid -> samples that saw it a zombie
    budget: int = 0
    stderr: str = ""
    worker_window: int = 100  # evaluations in a worker's life (see `envelope`)

    @property
    def lasting_zombies(self) -> list[int]:
        """Processes seen as zombies at two samples or more. A worker that ends is a zombie until
        its pool waits for it, which the pool does at once; one still a zombie a sample later was
        never waited for (a sample may catch the instant between, so one sighting is not a leak)."""
        return sorted(pid for pid, count in self.zombie_samples.items() if count >= 2)


def run_phase(
    name: str,
    config: Path,
    run_dir: Path,
    budget: int,
    interval: float = 2.0,
    timeout: float = 3600.0,
    worker_window: int = 100,
) -> PhaseResult:
    """Run one `actmine search` process and sample it and its workers until it exits."""
    result = PhaseResult(name, budget=budget, worker_window=worker_window)
    exe = Path(sys.executable).with_name("actmine")
    command = [
        str(exe) if exe.is_file() else sys.executable,
        *([] if exe.is_file() else ["-m", "actmine.cli"]),
        "search",
        "--config",
        str(config),
        "--run-dir",
        str(run_dir),
        "--quiet",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    started = time.monotonic()
    evaluations = 0
    try:
        while process.poll() is None:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"phase {name} did not finish within {timeout:g} s")
            counted = count_evaluations(run_dir)
            evaluations = counted if counted is not None else evaluations
            seconds = round(time.monotonic() - started, 2)
            for role, pid in [("controller", process.pid)] + roles_below(process.pid):
                sample = sample_process(pid)
                if sample is None:
                    continue
                if role == "worker":
                    result.workers_seen[pid] = sample.start_ticks
                elif role == "helper":
                    result.helpers_seen[pid] = sample.start_ticks
                if sample.state == "Z":
                    result.zombie_samples[pid] = result.zombie_samples.get(pid, 0) + 1
                result.rows.append(
                    {
                        "phase": name,
                        "seconds": seconds,
                        "evaluations": evaluations,
                        "role": role,
                        "pid": pid,
                        "rss_kb": sample.rss_kb,
                        "fds": sample.fds,
                        "threads": sample.threads,
                        "state": sample.state,
                    }
                )
            time.sleep(interval)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        result.stderr = process.stderr.read() if process.stderr else ""
        result.returncode = process.wait()
    time.sleep(0.5)
    result.workers_left = [
        pid
        for pid, ticks in {**result.workers_seen, **result.helpers_seen}.items()
        if (stat := _stat(pid)) is not None and stat[2] == ticks
    ]
    return result


# -- the figures --------------------------------------------------------------------------------------


def slope_per_100(points: Iterable[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (evaluations), times 100; 0 with fewer than two distinct x."""
    points = list(points)
    if len({x for x, _ in points}) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return 100 * sxy / sxx


def per_sample(rows: list[dict], role: str, metric: str) -> list[tuple[int, float, float]]:
    """(evaluations, seconds, value) per sample: the controller's value, or the workers' largest
    (one worker's figure: workers come and go, so their sum would follow their number)."""
    by_time: dict[float, tuple[int, float]] = {}
    for row in rows:
        if row["role"] != role or row["state"] == "Z":
            continue
        value = float(row[metric]) / (1024 if metric == "rss_kb" else 1)
        key = row["seconds"]
        previous = by_time.get(key)
        by_time[key] = (row["evaluations"], value if previous is None else max(previous[1], value))
    return [(evaluations, seconds, value) for seconds, (evaluations, value) in sorted(by_time.items())]


@dataclass
class Figures:
    phase: str
    role: str
    metric: str
    start: float
    warm: float
    end: float
    slope: float  # per 100 evaluations after the warm-up
    first_half_max: float
    second_half_max: float
    ok: bool
    samples: int

    def line(self) -> str:
        unit = " MiB" if self.metric == "rss_kb" else ""
        name = {"rss_kb": "RSS", "fds": "fds", "threads": "threads"}[self.metric]
        rule = (
            f"slope < {RSS_SLOPE_BOUND_MB:g} MiB/100"
            if self.metric == "rss_kb"
            else f"flat: max 2nd half {self.second_half_max:g} <= 1st half {self.first_half_max:g} + {FLAT_TOLERANCE}"
        )
        return (
            f"{self.phase:<9} {self.role:<10} {name:<8} start {self.start:8.1f}{unit}  "
            f"warm {self.warm:8.1f}{unit}  "
            f"end {self.end:8.1f}{unit}  slope {self.slope:+7.3f}{unit}/100 evals  "
            f"[{rule}] {'OK' if self.ok else 'GROWS'}  ({self.samples} samples)"
        )


def envelope(series: list[tuple[int, float, float]], window: int) -> list[tuple[int, float, float]]:
    """Each sample's value replaced by the largest within the last `window` evaluations.

    Workers are replaced every `max_tasks_per_worker` evaluations, so the largest worker's RSS is a
    saw-tooth (a new worker starts small); over a window as long as a worker's life the envelope is
    each worker's peak, and a worker that grew with its evaluations would lift it."""
    return [(e, s, max(v2 for e2, _, v2 in series[: i + 1] if e2 > e - window)) for i, (e, s, v) in enumerate(series)]


def held(series: list[tuple[int, float, float]], samples: int) -> list[tuple[int, float, float]]:
    """Each sample's value replaced by the least among it and the `samples` − 1 samples before it:
    the level the series held for `samples` samples. A spike shorter than that disappears; a step
    up (a leak) shows `samples` − 1 samples late."""
    return [
        (e, s, min(v2 for _, _, v2 in series[max(0, i - samples + 1) : i + 1])) for i, (e, s, v) in enumerate(series)
    ]


def figures(
    rows: list[dict], phase: str, role: str, metric: str, warmup: int, budget: int, worker_window: int = 100
) -> Figures | None:
    """The figures of one phase, role and metric; the loop only (samples before `budget` evaluations).
    A worker's RSS is judged by its envelope over `worker_window` evaluations (see `envelope`); fds
    and threads by the levels they held (see `held`)."""
    series = [(e, s, v) for e, s, v in per_sample(rows, role, metric) if e < budget]
    if role == "worker" and metric == "rss_kb":
        series = envelope(series, worker_window)
    if not series:
        return None
    warm = [(e, v) for e, _, v in series if e >= warmup]
    after = warm or [(e, v) for e, _, v in series]
    slope = slope_per_100(after)
    middle = (after[0][0] + after[-1][0]) / 2
    # fds and threads: the held levels (`after` is a suffix of `series`)
    judged = after if metric == "rss_kb" else [(e, v) for e, _, v in held(series, HELD_SAMPLES)[-len(after) :]]
    first = [v for e, v in judged if e <= middle] or [judged[0][1]]
    second = [v for e, v in judged if e > middle] or [judged[-1][1]]
    ok = slope < RSS_SLOPE_BOUND_MB if metric == "rss_kb" else max(second) <= max(first) + FLAT_TOLERANCE
    return Figures(
        phase, role, metric, series[0][2], after[0][1], series[-1][2], slope, max(first), max(second), ok, len(after)
    )


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def phase_warmup(warmup: int, budget: int) -> int:
    """The warm-up of a phase: `--warmup` evaluations, at most a third of the phase."""
    return min(warmup, budget // 3)


def plot(results: list[PhaseResult], warmup: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = (("rss_kb", "RSS (MiB)"), ("fds", "open fds"), ("threads", "threads"))
    fig, axes = plt.subplots(len(metrics), len(results), figsize=(6 * len(results), 8), squeeze=False, sharex="col")
    for column, result in enumerate(results):
        for row_index, (metric, label) in enumerate(metrics):
            axis = axes[row_index][column]
            for role, style in (("controller", "-"), ("worker", ".")):
                series = per_sample(result.rows, role, metric)
                if series:
                    axis.plot(
                        [e for e, _, _ in series],
                        [v for _, _, v in series],
                        style,
                        label=role if role == "controller" else "largest worker",
                        markersize=3,
                    )
                if series and role == "worker" and metric == "rss_kb":
                    peaks = envelope(series, result.worker_window)
                    axis.plot(
                        [e for e, _, _ in peaks],
                        [v for _, _, v in peaks],
                        "-",
                        linewidth=1,
                        label=f"workers' peak over {result.worker_window} evaluations",
                    )
            axis.axvline(phase_warmup(warmup, result.budget), color="grey", linestyle=":", linewidth=1)
            axis.axvline(result.budget, color="grey", linestyle="--", linewidth=1)
            axis.set_ylabel(label)
            axis.grid(alpha=0.3)
            if row_index == 0:  # with the RSS slopes, which the full scale hides
                slopes = [
                    f"{role} {found.slope:+.2f}"
                    for role in ("controller", "worker")
                    if (
                        found := figures(
                            result.rows,
                            result.name,
                            role,
                            metric,
                            phase_warmup(warmup, result.budget),
                            result.budget,
                            result.worker_window,
                        )
                    )
                    is not None
                ]
                axis.set_title(
                    f"{result.name}: {result.budget} evaluations (dotted: warm-up; dashed: loop ends)\n"
                    f"RSS slope after warm-up, MiB/100 evaluations: {', '.join(slopes)}",
                    fontsize=10,
                )
                axis.legend(loc="center right", fontsize=8)
        axes[-1][column].set_xlabel("evaluations")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(results: list[PhaseResult], warmup: int) -> tuple[list[Figures], list[str]]:
    """Every figure, and the problems found (empty when everything stayed bounded)."""
    all_figures, problems = [], []
    for result in results:
        for role in ("controller", "worker"):
            for metric in ("rss_kb", "fds", "threads"):
                found = figures(
                    result.rows,
                    result.name,
                    role,
                    metric,
                    phase_warmup(warmup, result.budget),
                    result.budget,
                    result.worker_window,
                )
                if found is None:
                    continue
                all_figures.append(found)
                if not found.ok:
                    problems.append(f"{result.name}: {role} {metric} grows ({found.line().strip()})")
        if result.returncode != 0:
            problems.append(f"{result.name}: the controller exited with {result.returncode}: {result.stderr[-2000:]}")
        if result.lasting_zombies:
            problems.append(f"{result.name}: processes left as zombies (never waited for): {result.lasting_zombies}")
        if result.workers_left:
            problems.append(f"{result.name}: worker processes alive after the controller exited: {result.workers_left}")
    return all_figures, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=1000, help="evaluations of the symbolic search (0: none)")
    parser.add_argument("--llm-budget", type=int, default=500, help="evaluations of the LLM search (0: none)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300, help="training steps per evaluation")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--warmup", type=int, default=150, help="evaluations before the slopes are measured")
    parser.add_argument("--max-tasks-per-worker", type=int, default=50)
    parser.add_argument("--out", default="soak-out", help="directory for soak.csv, soak.png and the runs")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    started = time.monotonic()
    phases = [(name, budget) for name, budget in (("symbolic", args.budget), ("llm", args.llm_budget)) if budget > 0]
    for name, budget in phases:
        run_dir = out / f"run-{name}"
        if run_dir.exists():
            raise SystemExit(f"{run_dir} exists: give a fresh --out (the soak measures a new run, not a resume)")
        print(f"phase {name}: {budget} evaluations ...", flush=True)
        window = max(1, min(args.workers * args.max_tasks_per_worker, budget // 5))
        if name == "llm":
            with ChatServer(scripted_answers(budget * 2)) as server:
                config = soak_config(
                    out, budget, args.workers, args.steps, llm_mutator(server.base_url), args.max_tasks_per_worker
                )
                results.append(run_phase(name, config, run_dir, budget, args.interval, worker_window=window))
        else:
            config = soak_config(out, budget, args.workers, args.steps, None, args.max_tasks_per_worker)
            results.append(run_phase(name, config, run_dir, budget, args.interval, worker_window=window))
        print(f"phase {name}: done in {time.monotonic() - started:.0f} s (exit {results[-1].returncode})", flush=True)
    rows = [row for result in results for row in result.rows]
    write_csv(rows, out / "soak.csv")
    plot(results, args.warmup, out / "soak.png")
    all_figures, problems = report(results, args.warmup)
    print(f"\n{'phase':<9} {'role':<10} metric")
    for found in all_figures:
        print(found.line())
    for result in results:
        print(
            f"{result.name}: {len(result.workers_seen)} worker processes seen ({len(result.helpers_seen)} helpers "
            f"below them), {len(result.workers_left)} left after exit, {len(result.lasting_zombies)} lasting zombies"
        )
    print(f"\nwrote {out / 'soak.csv'} and {out / 'soak.png'}; {time.monotonic() - started:.0f} s in all")
    if problems:
        print("\nVERDICT: GROWS\n" + "\n".join(problems))
        raise SystemExit(1)
    print(
        "\nVERDICT: bounded (RSS slope below "
        f"{RSS_SLOPE_BOUND_MB:g} MiB per 100 evaluations, fds and threads flat, no zombies, no workers left)"
    )


if __name__ == "__main__":
    main()
