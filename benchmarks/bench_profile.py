"""Where does one lab evaluation spend its time? A profile of real search candidates (issue 19, part 1).

    python benchmarks/bench_profile.py [RUN_DIR] [--candidates 12] [--suite lab] [--repeats 3]

For the library's references (relu, gelu, gelu_sine, gelu_sinc_perturbation) and a sample of a
finished run's programs (spread over its fitness range; default: the newest run under ./runs),
one `train_ensemble` of the suite's workload (the lab's training of every model, then its ID and
OOD scoring passes) is timed without a profiler (best of `--repeats`), then run once under
torch.profiler and its CPU time split into:

* activation forward   ops inside the activation's calls (training steps and scoring passes);
* activation backward  autograd nodes of the activation's ops (every backward node that is not
                       a matrix product, the loss, or gradient accumulation);
* matmul fwd / bwd     torch.baddbmm / bmm and their backward nodes;
* loss                 the squared error and its backward;
* optimiser            Adam's step and zero_grad (torch's `Optimizer.step#…` ranges);
* other                the rest (Python overhead, bookkeeping, the error metrics).

It also prints the matmul-only bound (`bench_fitness.matmul_only`: the same products, nothing
else) beside each candidate's time, and the evaluation passes' share measured directly (the two
no-grad forward passes over the evaluation points). Profiler shares carry the profiler's own
per-op overhead, which inflates many small elementwise ops: read them as ranks, the wall-clock
column as the cost.

Candidates are untrusted programs: each one is compiled and profiled in a child process
(`isolated.py`) that first does what a sandbox worker does (`actmine.candidate.worker`: leaves the network, caps its
memory and CPU time, ends with its parent, keeps stdout for its one answer line; a throw-away
directory as its cwd, HOME and TMPDIR, and the sandbox's scrubbed environment), compiles the
program through the checked namespace (`compile_candidate`), passes the probes, and is killed
after `--timeout` seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from isolated import isolate, reply, run_isolated  # benchmarks/ is on the path when run as a script

CATEGORIES = ("activation forward", "activation backward", "matmul fwd", "matmul bwd", "loss", "optimiser", "other")
MATMUL_OPS = {"aten::baddbmm", "aten::bmm", "aten::addmm", "aten::mm"}
MATMUL_NODES = ("BaddbmmBackward", "BmmBackward", "AddmmBackward", "MmBackward", "TransposeBackward")
LOSS_NODES = ("PowBackward", "SubBackward", "MeanBackward", "SumBackward")
REFERENCES = ("relu", "gelu", "gelu_sine", "gelu_sinc_perturbation")


# -- the child: one candidate, isolated as a sandbox worker is --------------------------------------


def _category(event, parents: dict[int, object]) -> str:
    """The category of one profiler event with self time, from its own name and its ancestors'."""
    names, node = [], event
    while node is not None:
        names.append(node.name)
        node = parents.get(id(node))
    backward = next((n for n in names if n.startswith("autograd::engine::evaluate_function: ")), None)
    if backward is not None:
        node_name = backward.split(": ", 1)[1]
        if node_name.startswith(MATMUL_NODES):
            return "matmul bwd"
        if node_name.startswith(LOSS_NODES):
            return "loss"
        if node_name.startswith(("AccumulateGrad", "torch::autograd::AccumulateGrad")):
            return "optimiser"
        return "activation backward"
    if any(n.startswith("Optimizer.") for n in names):
        return "optimiser"
    if "activation" in names:
        return "activation forward"
    if event.name in MATMUL_OPS:
        return "matmul fwd"
    if any(n in ("aten::pow", "aten::sub", "aten::mean") for n in names[:1]):
        return "loss"
    return "other"


def profile_shares(train, act) -> dict[str, float]:
    """CPU self time per category of one `train(act)` under torch.profiler, as shares of the total."""
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile

    def marked(x):
        with record_function("activation"):
            return act(x)

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train(marked)
    events = list(prof.events())
    parents = {id(e): e.cpu_parent for e in events}
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for event in events:
        totals[_category(event, parents)] += event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {k: v / whole for k, v in totals.items()}


def child_main() -> None:
    """Read {source | name, suite, repeats} on stdin, print one JSON line of timings and shares."""
    request, answer = isolate()  # first: nothing of the candidate runs before the child is isolated

    import time

    import torch

    from actmine import activations
    from actmine.candidate.probes import run_probes
    from actmine.candidate.source import compile_candidate
    from actmine.lab.ensemble import TrainingProtocol, build_workload, forward, split_parameters, train_ensemble
    from actmine.lab.tasks import get_suite
    from bench_fitness import best_seconds, matmul_only

    torch.set_num_threads(1)
    act = (
        activations.get(request["name"])
        if request.get("source") is None
        else compile_candidate(request["source"], request["name"])
    )
    run_probes(act)
    workload = build_workload(get_suite(request["suite"]), TrainingProtocol())
    params = split_parameters(workload.init, workload.models, workload.batches_x.shape[-1], workload.protocol)

    def scoring_passes() -> None:
        with torch.no_grad():
            forward(params, workload.x_id, act)
            forward(params, workload.x_ood, act)

    best = best_seconds(
        {
            "train": lambda: train_ensemble(act, workload),
            "bound": lambda: matmul_only(workload),
            "scoring": scoring_passes,
        },
        request["repeats"],
    )
    started = time.perf_counter()
    shares = profile_shares(lambda a: train_ensemble(a, workload), act)
    reply(
        answer,
        {
            "seconds": best["train"],
            "bound": best["bound"],
            "scoring": best["scoring"],
            "profiled_seconds": time.perf_counter() - started,
            "shares": shares,
            "models": workload.models,
        },
    )


# -- the parent: choose candidates, run each child, print the table ---------------------------------


def sample_programs(run_dir: Path, count: int) -> list[tuple[str, str, float]]:
    """(name, source, fitness) of `count` ok programs spread evenly over the run's fitness ranks."""
    from actmine.evolve.database import ProgramDatabase
    from actmine.run_files import DATABASE

    database = ProgramDatabase(run_dir / DATABASE, readonly=True)
    try:
        run = database.latest_run()
        programs = sorted(
            (p for p in database.programs(run.id, status="ok") if p.mutator != "seed"), key=lambda p: p.fitness
        )
    finally:
        database.close()
    if not programs:
        return []
    picks = sorted({round(i * (len(programs) - 1) / max(1, count - 1)) for i in range(count)})
    return [(f"program {programs[i].id}", programs[i].source, programs[i].fitness) for i in picks]


def run_child(request: dict, timeout: float) -> dict:
    """One candidate's profile in its own isolated, killable process; {"error": …} if it fails."""
    return run_isolated(Path(__file__), request, timeout)


def newest_run(root: Path) -> Path | None:
    from actmine.run_files import DATABASE

    runs = sorted((p.parent for p in root.glob(f"*/{DATABASE}")), key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", type=Path, help="a finished search run (default: newest under ./runs)")
    parser.add_argument("--candidates", type=int, default=12, help="programs sampled from the run")
    parser.add_argument("--suite", default="lab")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--memory-mb", type=int, default=4096)
    args = parser.parse_args()
    run_dir = args.run_dir or newest_run(Path("runs"))
    jobs = [(name, None, None) for name in REFERENCES]
    jobs += sample_programs(run_dir, args.candidates) if run_dir else []
    from actmine.terminal import terminal_text

    print(f"suite {args.suite}, one thread per child; run: {run_dir or 'none (references only)'}")
    print(
        f"{'candidate':<24} {'fitness':>8} {'eval s':>7} {'÷ bound':>8} {'scoring':>8} | "
        + " ".join(f"{c:>10.10}" for c in CATEGORIES)
    )
    rows = []
    for name, source, fitness in jobs:
        request = {
            "name": name,
            "source": source,
            "suite": args.suite,
            "repeats": args.repeats,
            "memory_mb": args.memory_mb,
            "cpu_s": args.timeout,
        }
        result = run_child(request, args.timeout)
        label = terminal_text(name, keep_newlines=False)[:24]
        if "error" in result:
            print(f"{label:<24} {'':>8} {terminal_text(result['error'], keep_newlines=False)}")
            continue
        rows.append((name, result))
        shares = " ".join(f"{100 * result['shares'][c]:>9.1f}%" for c in CATEGORIES)
        print(
            f"{label:<24} {'' if fitness is None else f'{fitness:+.3f}':>8} {result['seconds']:>7.2f} "
            f"{result['seconds'] / result['bound']:>7.1f}× {100 * result['scoring'] / result['seconds']:>7.1f}% | "
            + shares,
            flush=True,
        )
    programs = [r for n, r in rows if n.startswith("program ")]
    if programs:
        import statistics

        print(
            f"\nmedian over {len(programs)} programs: {statistics.median(r['seconds'] for r in programs):.2f} s per "
            f"evaluation, {statistics.median(r['seconds'] / r['bound'] for r in programs):.1f}× the matmul-only bound; "
            "activation forward + backward "
            f"{100 * statistics.median(r['shares']['activation forward'] + r['shares']['activation backward'] for r in programs):.0f}% "
            "of the profiled time"
        )


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        child_main()
    else:
        main()
