"""Simplify sympy expressions in a short-lived child process, with a hard wall-clock limit per expression.

`sympy.simplify` can run for minutes on an odd expression, and a thread running it cannot be
interrupted. `actmine report`, `actmine export` and the end of a search must not hang on a hostile
program's formula, so the simplify step runs here, in a child process the parent can kill:

- One child per batch (a report formats up to ~10 programs: sympy is imported once, not once per
  formula). The child is this file run by path with `python -I` (isolated: no `PYTHON*` variables,
  no current directory on `sys.path`), so it imports sympy and the standard library only -- not
  torch, not the `actmine` package.
- Request and answer, one expression at a time, as JSON lines over pipes: the parent sends the
  expression's `sympy.srepr` text, the child answers `{"latex": ...}` (or `{"latex": null}`).
  Nothing is pickled in either direction. The child rebuilds the expression from the srepr text by
  walking its `ast` with a whitelist (sympy classes and singletons only, literals as arguments);
  it never evals text.
- The parent waits at most `timeout_s` per expression (and `startup_timeout_s` for the child to
  import sympy). On a timeout it kills the child, answers None for that expression (the report says
  "formula not derived") and starts a fresh child for the rest.
- The child caps its own address space (`CHILD_ADDRESS_SPACE`) so a runaway simplification fails
  with MemoryError instead of swapping.
"""

from __future__ import annotations

import ast
import json
import os
import select
import subprocess
import sys
import time
from typing import Sequence

__all__ = ["simplify_to_latex", "TIMEOUT_S", "STARTUP_TIMEOUT_S"]

TIMEOUT_S = 5.0  # per expression, in the child
STARTUP_TIMEOUT_S = 30.0  # python + sympy import (a loaded machine can take a few seconds)
SIMPLIFY_MAX_OPS = 80  # larger expressions are printed as they are (simplify is hopeless on them)
CHILD_ADDRESS_SPACE = 2 << 30
_MAX_ANSWER = 1 << 20  # one answer line; longer ones count as no formula


def _child_argv() -> list[str]:
    return [sys.executable, "-I", os.path.abspath(__file__)]


class _Child:
    """One running child: send one line, read one line with a deadline."""

    def __init__(self, argv: Sequence[str]):
        self.process = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self.buffer = b""

    def send(self, text: str) -> bool:
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(text.encode() + b"\n")
            self.process.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def read_line(self, timeout_s: float) -> str | None:
        """The next line, or None on timeout, end of output or an oversized line."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or len(self.buffer) > _MAX_ANSWER:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode("utf-8", "replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self.process.wait()


def simplify_to_latex(
    sreprs: Sequence[str],
    timeout_s: float = TIMEOUT_S,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    argv: Sequence[str] | None = None,
) -> list[str | None]:
    """LaTeX of the simplified form of each expression (given as `sympy.srepr` text), or None for
    one that failed or took longer than `timeout_s`. `argv` replaces the child's command line
    (tests use it to stand in a child that hangs)."""
    answers: list[str | None] = [None] * len(sreprs)
    argv = list(argv) if argv is not None else _child_argv()
    index = 0
    while index < len(sreprs):
        child = _Child(argv)
        try:
            if child.read_line(startup_timeout_s) != "ready":
                break  # the child cannot start: no formulas (the report goes on without them)
            while index < len(sreprs):
                if not child.send(json.dumps({"srepr": sreprs[index]})):
                    index += 1
                    break
                line = child.read_line(timeout_s)
                index += 1
                if line is None:
                    break  # timed out (or died): kill it, this one has no formula, go on with the rest
                try:
                    answer = json.loads(line)
                except ValueError:
                    continue
                latex = answer.get("latex") if isinstance(answer, dict) else None
                answers[index - 1] = latex if isinstance(latex, str) else None
        finally:
            child.kill()
    return answers


# ------------------------------------------------------------------------------------------------
# The child (runs with sympy and the standard library only)
# ------------------------------------------------------------------------------------------------


def _rebuild(text: str):
    """The sympy expression of `sympy.srepr` text, built by walking its ast: a call must name a
    sympy class, a bare name a sympy class or singleton (`pi`, `true`), and arguments are literals
    or such calls. Strings are accepted only by `Symbol`, `Float`, `Integer` and `Rational`."""
    import sympy
    from sympy.functions.elementary.piecewise import ExprCondPair

    extra = {"ExprCondPair": ExprCondPair}  # srepr names that sympy does not export at the top

    def resolve(name: str):
        value = extra.get(name, getattr(sympy, name, None))
        if isinstance(value, type) and issubclass(value, sympy.Basic) and value is not sympy.Poly:
            return value
        if isinstance(value, sympy.Basic):
            return value
        raise ValueError(f"not a sympy class: {name}")

    def build(node: ast.AST):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool)):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            return -build(node.operand)
        if isinstance(node, ast.Tuple):
            return tuple(build(e) for e in node.elts)
        if isinstance(node, ast.Name):
            return resolve(node.id)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            cls = resolve(node.func.id)
            if not isinstance(cls, type):
                raise ValueError(f"not a sympy class: {node.func.id}")
            strings_ok = cls in (sympy.Symbol, sympy.Float, sympy.Integer, sympy.Rational)
            args = [
                a.value if strings_ok and isinstance(a, ast.Constant) and isinstance(a.value, str) else build(a)
                for a in node.args
            ]
            kwargs = {k.arg: build(k.value) for k in node.keywords if k.arg is not None}
            if len(kwargs) != len(node.keywords):
                raise ValueError("** arguments")
            return cls(*args, **kwargs)
        raise ValueError(f"unexpected {type(node).__name__} in srepr text")

    return build(ast.parse(text, mode="eval").body)


def _simplified_latex(text: str) -> str | None:
    import sympy

    expr = _rebuild(text)
    try:
        if sympy.count_ops(expr) <= SIMPLIFY_MAX_OPS:
            simpler = sympy.simplify(expr)
            if sympy.count_ops(simpler) <= sympy.count_ops(expr):  # simplify() can make things longer
                expr = simpler
    except Exception:  # sympy fails in many ways on odd expressions; fall back to the expression as built
        pass
    return sympy.latex(expr)


def child_main() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))
    except (ImportError, ValueError, OSError):
        pass
    import sympy  # noqa: F401  (imported before "ready": the startup limit covers it)

    sys.setrecursionlimit(10000)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        try:
            latex = _simplified_latex(json.loads(line)["srepr"])
        except Exception:
            latex = None
        out.write(json.dumps({"latex": latex}) + "\n")
        out.flush()


if __name__ == "__main__":
    child_main()
