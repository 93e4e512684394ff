"""Run a benchmark's handling of untrusted programs in a child isolated as a sandbox worker is.

A benchmark that trains a run's programs (text from a database, possibly a model's) in a way the
sandbox protocol has no message for (a profile, several candidates stacked in one model) does it in
one child process of its own script:

    parent:  result = run_isolated(Path(__file__), request, timeout=..., memory_mb=...)
    child:   request, answer = isolate()   # first thing, when the script sees `--child`
             ...                            # the work: compile/interpret and train the programs
             reply(answer, {...})

`isolate` does what `actmine.candidate.worker` does before it runs a candidate: it leaves the
network, caps its address space and CPU time, ends with its parent and keeps stdout for its one
answer line (fds 0 and 1 become /dev/null, so nothing a program prints can answer). The child runs
with the sandbox's scrubbed environment (`worker_environment`) in a throw-away directory (its cwd,
HOME and TMPDIR), in its own session, and is killed with its whole process group after `timeout`
seconds. The answer is one JSON line, never pickle.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TextIO


def isolate() -> tuple[dict, TextIO]:
    """In the child: read the request line, then isolate as a sandbox worker; (request, answer stream)."""
    from actmine.candidate import worker

    request = json.loads(sys.stdin.readline())
    worker.isolate_network()
    worker.limit_resources(int(request["memory_mb"]))
    worker.set_cpu_budget(float(request["cpu_s"]))
    worker.exit_with_parent(os.getppid())
    _, answer = worker.take_protocol_streams()
    return request, answer


def reply(answer: TextIO, result: dict) -> None:
    """In the child: the one answer line."""
    answer.write(json.dumps(result) + "\n")
    answer.flush()


def run_isolated(script: Path, request: dict, timeout: float) -> dict:
    """In the parent: `script --child` with `request` (which carries `memory_mb` and `cpu_s`) in an
    isolated, killable child; its answer, or {"error": ...} when it failed or timed out."""
    from actmine.candidate.sandbox import SandboxLimits, worker_environment

    home = tempfile.mkdtemp(prefix="actmine-isolated-")  # its cwd, HOME and TMPDIR, removed after
    env = worker_environment(home, SandboxLimits(memory_mb=int(request["memory_mb"])))
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(Path(__file__).resolve().parent)])
    process = subprocess.Popen(
        [sys.executable, str(Path(script).resolve()), "--child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=home,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(json.dumps(request) + "\n", timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return {"error": f"timed out after {timeout:g} s"}
    finally:
        shutil.rmtree(home, ignore_errors=True)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        last = (err.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {process.returncode}: {last[:200]}"}
    return json.loads(lines[-1])
