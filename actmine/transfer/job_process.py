"""One job in a fresh, confined ``python`` process, the parent's side (`run_in_subprocess`):
the scrubbed environment, the bootstrap that confines the process before torch is imported, the
JSON-lines conversation (hello, request, answer; never pickle), the wall-clock timeout, killing
the job's process group, and turning every way a job can end into a `TransferResult`.

The child's side of the protocol is `child`. `run_in_subprocess` is the job that the job system's
pools run (`actmine.executors.job_pool`: locally, or on a Dask worker), so a job is confined the
same way everywhere.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..scratch import TRANSFER_PREFIX, ScratchDirectory
from .jobs import TransferJob, TransferResult, _failed

if TYPE_CHECKING:  # not at run time: the job's own process imports this package, and must not pay for Dask
    from ..executors.job_pool import Slot

# Variables a job's child keeps besides the sandbox's allow-list (`sandbox.worker_environment`):
# the GPU runtime's settings and the data directory. Nothing that carries credentials.
CHILD_ENV_KEEP = ("LD_LIBRARY_PATH", "ACTMINE_DATA_DIR")
CHILD_ENV_PREFIXES = ("CUDA_", "NVIDIA_", "PYTORCH_")


def _child_environment(home: str) -> dict[str, str]:
    """The sandbox's scrubbed environment (allow-list, HOME/TMPDIR in a scratch directory) plus
    the GPU runtime's variables; PYTHONPATH keeps what this process had."""
    from ..candidate.sandbox import SandboxLimits, worker_environment

    env = worker_environment(home, SandboxLimits())
    env.pop("ACTMINE_WORKER_LIMITS", None)
    env.update({k: v for k, v in os.environ.items() if k in CHILD_ENV_KEEP or k.startswith(CHILD_ENV_PREFIXES)})
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], os.environ["PYTHONPATH"]])
    return env


# The job process's first statements, run before torch is imported, while the process is still
# single-threaded (unshare(CLONE_NEWUSER) refuses a threaded process): leave the network, cap the
# address space and the CPU time with the lab's worker's own functions, then run `_job_main`.
# argv[1] is the limits as JSON: {"memory_mb": N or null, "cpu_s": S or null}.
_CHILD_BOOTSTRAP = """\
import json, sys
from actmine.candidate.worker import isolate_network, limit_resources, set_cpu_budget
limits = json.loads(sys.argv[1])
isolated = isolate_network()
limit_resources(int(limits.get("memory_mb") or 0))
if limits.get("cpu_s"):
    set_cpu_budget(float(limits["cpu_s"]))
from actmine.transfer.child import _job_main
_job_main(isolated, limits)
"""


MAX_ANSWER_BYTES = 16 * 1024 * 1024  # a job's answer is a few KB; more is a misbehaving process
# The job's stderr (its prints and warnings, a candidate's included) never reaches the terminal: the
# parent keeps its last bytes and quotes them, escaped, when the process dies without answering.
STDERR_TAIL_BYTES = 2048


class _StderrTail(threading.Thread):
    """Reads the job process's stderr to its end (so the process never blocks on a full pipe) and
    keeps the last `STDERR_TAIL_BYTES` bytes."""

    def __init__(self, stream: Any):
        super().__init__(name="actmine-job-stderr", daemon=True)
        self.stream, self.tail = stream, b""
        self.start()

    def run(self) -> None:
        try:
            while chunk := os.read(self.stream.fileno(), 1 << 16):
                self.tail = (self.tail + chunk)[-STDERR_TAIL_BYTES:]
        except (OSError, ValueError):
            pass

    def text(self) -> str:
        """The tail as text a terminal shows as it is (`terminal_text`), after the group is gone."""
        from ..terminal import terminal_text

        self.join(timeout=2.0)
        return terminal_text(self.tail.decode("utf-8", "replace").strip())


def _end_process_group(process: Any) -> None:
    """Kill whatever is left of the job's process group (its DataLoader workers, anything it
    started), then reap the job's process.

    The group is killed while its leader is not yet reaped (alive, or a zombie), so its id cannot
    have been reused by an unrelated process.
    """
    import signal

    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _exited(process: Any) -> bool:
    """Whether the process has ended, without reaping it (its pid, and so its group id, stay ours)."""
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _read_answer(process: Any, deadline: float | None, cancelled: threading.Event | None) -> tuple[bytes, str | None]:
    """Everything the process writes to stdout until it ends; and why we stopped it, if we did:
    ``timeout`` (past ``deadline``), ``cancelled`` (``cancelled`` was set) or ``too_long``."""
    import selectors

    chunks, size, stop = [], 0, None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if cancelled is not None and cancelled.is_set():
                stop = "cancelled"
            elif wait <= 0:
                stop = "timeout"
            if stop:
                break
            if not selector.select(wait):
                continue
            chunk = os.read(process.stdout.fileno(), 1 << 16)
            if not chunk:
                break  # EOF: the process closed stdout (it is ending)
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                stop = "too_long"
                break
    while stop is None and not _exited(process):  # stdout closed; the process is on its way out
        if cancelled is not None and cancelled.is_set():
            stop = "cancelled"
        elif deadline is not None and time.monotonic() >= deadline:
            stop = "timeout"
        else:
            time.sleep(0.05)
    return b"".join(chunks), stop


def _sandbox_report(hello: Mapping[str, Any], limits: Mapping[str, Any]) -> dict[str, Any]:
    """``TransferResult.sandbox``: what the job's process said it applied, and the parent's timeout."""
    number = lambda v: v if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None  # noqa: E731
    isolated = hello.get("network_isolated")
    return {
        "network_isolated": isolated if isinstance(isolated, bool) else None,
        "timeout_s": number(limits.get("timeout_s")),
        "cpu_s": number(hello.get("cpu_s", limits.get("cpu_s"))),
        "memory_mb": number(hello.get("memory_mb", limits.get("memory_mb"))),
    }


def _death(status: int | None, limits: Mapping[str, Any]) -> tuple[str, str]:
    """The reason code and message of a job process that ended without answering."""
    import signal

    if status is not None and status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        if -status == signal.SIGXCPU:
            return "cpu_limit", (
                f"the job used more than its {limits.get('cpu_s'):g} s of CPU time and was "
                "stopped; raise --cpu-time (0: no limit)"
            )
        memory = f" (its address-space limit was {limits['memory_mb']} MB)" if limits.get("memory_mb") else ""
        return "worker_died", (
            f"the job's process ended with {name} before answering{memory}: killed (e.g. by "
            "the out-of-memory killer) or a crash in native code"
        )
    return "worker_died", f"the job's process ended with status {status} before answering"


def _job_environment(home: str, gpu: str | None) -> dict[str, str]:
    """The job process's environment: the scrubbed one (`_child_environment`), ``gpu`` as its only
    visible GPU, and a PYTHONPATH that reaches whatever this process can import, since the job
    imports benchmark modules (plug-ins included) by the paths the parent found them at."""
    env = _child_environment(home)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    paths = [env["PYTHONPATH"], *(p for p in sys.path if p and os.path.isdir(p))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _start_job_process(home: str, gpu: str | None, limits: Mapping[str, Any], lock_fd: int) -> Any:
    """Start the job's ``python`` process (`_CHILD_BOOTSTRAP`) in ``home``, in a session and
    process group of its own (so that `_end_process_group` can kill all it starts), told the
    limits it sets on itself (RLIMIT_AS, RLIMIT_CPU); the wall clock stays with the parent. It
    inherits ``lock_fd``, the lock of ``home`` (`actmine.scratch`)."""
    import subprocess

    child_limits = {"memory_mb": limits.get("memory_mb") or None, "cpu_s": limits.get("cpu_s") or None}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD_BOOTSTRAP, json.dumps(child_limits)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # never the terminal: `_StderrTail`
        cwd=home,
        env=_job_environment(home, gpu),
        start_new_session=True,
        pass_fds=(lock_fd,),
    )


def _converse(
    process: Any, request: Mapping[str, Any], deadline: float | None, cancelled: threading.Event | None
) -> tuple[bytes, str | None]:
    """Send the job's request, read its answer (`_read_answer`), then end its process group and
    close the pipes, whatever happened: no process of the job outlives this call."""
    try:
        try:
            process.stdin.write((json.dumps(request) + "\n").encode())
            process.stdin.flush()  # stdin stays open meanwhile: the job's lifeline
        except (BrokenPipeError, OSError):
            pass  # it died at once; said by the caller from its exit status
        return _read_answer(process, deadline, cancelled)
    finally:
        _end_process_group(process)
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        # stderr is closed by its reader's owner, `run_in_subprocess`, once the tail is read


def _split_hello(answer: bytes) -> tuple[dict[str, Any], list[str]]:
    """The job process's hello (its first line, saying which confinements it applied; ``{}`` when
    it sent none) and the answer's other non-blank lines."""
    lines = [line for line in answer.decode("utf-8", "replace").splitlines() if line.strip()]
    if lines:
        try:
            first = json.loads(lines[0])
            if isinstance(first, dict) and first.get("hello") is True:
                return first, lines[1:]
        except ValueError:
            pass
    return {}, lines


def _job_failure(
    stop: str | None, status: int | None, lines: Sequence[str], timeout: float | None, limits: Mapping[str, Any]
) -> tuple[str, str] | None:
    """The reason code and message when the job did not answer (stopped by us, or dead), else
    ``None``: the answer is in its last line."""
    if stop == "timeout":
        return "timeout", (
            f"the job ran longer than its {timeout:g} s of wall-clock time and was "
            "stopped (its process group killed); raise --timeout (0: no limit)"
        )
    if stop == "cancelled":
        return "executor_error", "the run was interrupted before the job finished"
    if stop == "too_long":
        return "bad_answer", f"the job's process wrote more than {MAX_ANSWER_BYTES} bytes of answer"
    if status != 0 or not lines:
        return _death(status, limits)
    return None


def _with_sandbox(line: str, sandbox: Mapping[str, Any]) -> str:
    """The job's answer line with the parent's ``sandbox`` report in it (the parent's word, not the
    child's); a line that is not JSON goes back as it is, for `_answer` to say what is wrong."""
    try:
        data = json.loads(line)
    except ValueError:
        return line
    if isinstance(data, dict):
        data["sandbox"] = sandbox
    return json.dumps(data, allow_nan=False, default=str)


def run_in_subprocess(
    job: Mapping[str, Any],
    data_dir: str,
    device: str,
    limits: Mapping[str, Any] | None = None,
    *,
    slot: Slot | None = None,
    cancelled: threading.Event | None = None,
) -> str:
    """Run one job in a fresh, confined ``python`` process; its answer as JSON text.

    The process (see `_CHILD_BOOTSTRAP`, `_job_main`) runs in its own session and process group,
    with the scrubbed environment (`_child_environment`; the job ``slot``'s GPU as its only visible
    GPU, its threads as the job's), its own
    temporary directory as cwd, HOME and TMPDIR (deleted after), no network where the kernel allows
    a network namespace, and ``limits`` (`TransferLimits.resolve`): ``memory_mb`` (RLIMIT_AS) and
    ``cpu_s`` (RLIMIT_CPU) set by the process itself, ``timeout_s`` (wall clock) enforced here by
    killing its process group. Every way the job can end is a `TransferResult` in the text:
    ``timeout``, ``cpu_limit``, ``worker_died``, ``bad_answer``; ``executor_error`` when
    ``cancelled`` was set (the run was interrupted). Never raises for the job.
    """
    limits = dict(limits or {})
    threads, gpu = (slot.threads, slot.gpu) if slot is not None else (1, None)
    timeout = limits.get("timeout_s") or None
    described = TransferJob.from_dict(job)
    scratch = ScratchDirectory(TRANSFER_PREFIX)  # swept by a later run if this process is killed
    home = scratch.path
    started = time.monotonic()
    try:
        process = _start_job_process(home, gpu, limits, scratch.lock_fd)
        stderr = _StderrTail(process.stderr)
        request = {"job": dict(job), "data_dir": data_dir, "device": device, "threads": threads}
        answer, stop = _converse(process, request, started + timeout if timeout else None, cancelled)
        last_output = stderr.text()
        process.stderr.close()
    finally:
        scratch.remove()
    seconds = time.monotonic() - started
    hello, lines = _split_hello(answer)
    sandbox = _sandbox_report(hello, limits)
    failure = _job_failure(stop, process.returncode, lines, timeout, limits)
    if failure is not None:
        code, message = failure
        if code == "worker_died" and last_output:
            message += f"; the last of its output: {last_output}"
        return json.dumps(_failed(described, code, message, seconds=seconds, sandbox=sandbox).to_dict())
    return _with_sandbox(lines[-1], sandbox)


def _answer(job: TransferJob, text: Any) -> TransferResult:
    try:
        result = TransferResult.from_dict(json.loads(text))
        if (result.activation, result.benchmark, result.seed) != (job.activation, job.benchmark, job.seed):
            raise ValueError("the answer is about another job")
        return result
    except (TypeError, ValueError) as exc:
        return _failed(job, "bad_answer", f"the job's process answered with malformed data: {exc}")
