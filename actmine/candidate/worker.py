"""The sandboxed worker process: `python -m actmine.candidate.worker`.

Started by `actmine.candidate.sandbox.SandboxPool` with a scrubbed environment, a throw-away
working directory and its limits in `ACTMINE_WORKER_LIMITS`. Before it imports torch (while it is
still single-threaded) it:

- leaves the network: a new user + network namespace holds only a loopback interface that is
  down, so no socket can reach anything (best effort: where namespaces are not permitted, the
  static policy is the barrier, and `hello` reports `network_isolated: false`);
- caps its address space (RLIMIT_AS) and disables core dumps;
- keeps the protocol's stdin/stdout for itself and points file descriptors 0 and 1 at /dev/null,
  so a candidate that prints cannot corrupt the protocol;
- ends itself when its parent is gone (`exit_with_parent`): a worker whose pool's process was
  killed mid-evaluation (a Dask worker SIGKILLed, say) would otherwise train its candidate to the
  end for nobody, and only then read EOF on its request pipe.

Then it answers requests, one JSON object per line: `{"id", "source", "name", "lab", "reference",
"cpu_seconds"}` → `{"id", "evaluation", "recycle"}`. Before each request it sets RLIMIT_CPU to the
CPU time used so far plus the request's budget: a runaway candidate is killed by SIGXCPU, and the
parent's wall-clock timeout backs that up. After each request it compares torch's global state
(`torch_state`: threads, default dtype, grad mode, deterministic algorithms, the global RNG) with
its state at start: a change fails the evaluation with `global_state` and the worker is replaced.
Every error message it sends is capped (`probes.MESSAGE_LIMIT` characters). JSON, not pickle: the
parent never unpickles what a process that ran hostile code wrote.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import resource
import sys
import threading
import time

from actmine.scratch import remove_own_directory

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


def isolate_network() -> bool:
    """Move this (single-threaded) process into fresh user and network namespaces."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0 or libc.unshare(CLONE_NEWNET) == 0
    except (OSError, AttributeError):
        return False


def limit_resources(memory_mb: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit if hard == resource.RLIM_INFINITY else min(limit, hard)))


def set_cpu_budget(seconds: float) -> None:
    """Allow `seconds` more CPU time from now (soft limit: SIGXCPU ends the process)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def exit_with_parent(parent: int, interval_s: float = 0.5) -> threading.Thread:
    """Watch, on a daemon thread, that `parent` is still this process's parent; exit at once when not.

    (A worker is its own session leader, so the signal that kills its parent does not reach it; and
    PR_SET_PDEATHSIG would follow the parent *thread* that spawned it, which a pool does not keep.)
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        remove_own_directory()  # the pool that would have removed it is gone
        os._exit(1)

    watcher = threading.Thread(target=watch, name="actmine-parent-watch", daemon=True)
    watcher.start()
    return watcher


def take_protocol_streams():
    """Private copies of stdin/stdout for the protocol; fds 0 and 1 become /dev/null."""
    protocol_in = os.fdopen(os.dup(0), "r", encoding="utf-8")
    protocol_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    sys.stdin = open(os.devnull, encoding="utf-8")
    sys.stdout = open(os.devnull, "w", encoding="utf-8")
    return protocol_in, protocol_out


def torch_state() -> dict:
    """The torch global state a candidate must not change (checked after every request).

    `rng` is a digest of the global random generator's state (and of the CUDA generators' where
    CUDA is in use): a candidate that draws from it or reseeds it changes what every later user of
    torch's global RNG in this process gets. The lab never touches it (its data, minibatches and
    initial weights come from their own seeded `torch.Generator`s and numpy generators, the
    probes' inputs too), so any change is the candidate's.
    """
    import torch

    rng = hashlib.sha256(torch.random.get_rng_state().numpy().tobytes())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for state in torch.cuda.get_rng_state_all():
            rng.update(state.numpy().tobytes())
    return {
        "threads": torch.get_num_threads(),
        "dtype": str(torch.get_default_dtype()),
        "grad": torch.is_grad_enabled(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "rng": rng.hexdigest()[:16],
    }


def state_change(before: dict, after: dict) -> str:
    """What differs between two `torch_state()`s, for the refusal's message."""
    return ", ".join(
        f"{key}: {before.get(key)!r} → {after.get(key)!r}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    )


def main() -> None:
    limits = json.loads(os.environ.get("ACTMINE_WORKER_LIMITS", "{}"))
    network_isolated = isolate_network()
    limit_resources(int(limits.get("memory_mb", 0)))
    # After the namespaces (unshare needs a single-threaded process); the pool names its pid, so a
    # parent that died before this line is noticed too.
    exit_with_parent(int(os.environ.get("ACTMINE_PARENT_PID") or os.getppid()))
    protocol_in, protocol_out = take_protocol_streams()

    import torch

    torch.set_num_threads(1)
    from actmine.candidate.probes import MESSAGE_LIMIT, cap_message
    from actmine.lab.ensemble import TrainResult
    from actmine.lab.fitness import Evaluation, Lab

    def send(message: dict) -> None:
        protocol_out.write(json.dumps(message) + "\n")
        protocol_out.flush()

    send({"hello": True, "pid": os.getpid(), "network_isolated": network_isolated})
    baseline = torch_state()
    labs: dict[str, Lab] = {}
    for line in protocol_in:
        request = json.loads(line)
        key = json.dumps(request["lab"], sort_keys=True)
        if key not in labs:  # the workload is built once per worker and lab configuration
            while len(labs) >= 4:  # a search samples new tasks every round: keep the latest few
                labs.pop(next(iter(labs)))
            labs[key] = Lab.from_spec(request["lab"])
            reference = request["reference"]
            labs[key].use_reference(
                TrainResult(
                    torch.empty(0), torch.tensor(reference["id_error"]), torch.tensor(reference["ood_error"]), []
                )
            )
        set_cpu_budget(float(request.get("cpu_seconds", 600)))
        try:
            evaluation = labs[key].evaluate_source(
                request["source"],
                name=request.get("name", "candidate"),
                skip_fingerprints=frozenset(request.get("skip_fingerprints", ())),
            )
        except MemoryError:
            evaluation = Evaluation(activation=request.get("name", "candidate"), ok=False)
            evaluation.fail("train", "memory_limit", "the candidate exceeded the worker's memory limit")
        state = torch_state()
        recycle = state != baseline or (evaluation.error or {}).get("code") == "memory_limit"
        if state != baseline:
            evaluation.fail(
                evaluation.stage,
                "global_state",
                f"the candidate changed torch's global state ({state_change(baseline, state)}); the worker is replaced",
            )
        if evaluation.error:  # Evaluation.fail caps too; this holds whatever path set the error
            evaluation.error = {key: cap_message(value, MESSAGE_LIMIT) for key, value in evaluation.error.items()}
        send({"id": request["id"], "evaluation": evaluation.to_dict(), "recycle": recycle})
        if recycle:
            break
    # EOF or recycled: this worker is done. Its pool removes the directory of a worker it stops, but
    # EOF also means the pool's process died, and EOF arrives before the parent watcher's next look.
    remove_own_directory()


if __name__ == "__main__":
    main()
