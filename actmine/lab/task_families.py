"""Synthetic regression tasks with an in-distribution (ID) and an out-of-distribution (OOD) split.

Every task is the same thing underneath: a target function of named variables, an ID box that the
network trains on and a disjoint OOD box on which its extrapolation is scored. The four families
are constructors of that one `Task`:

- `polynomial` — random polynomials in 1 or n dimensions (train on [0, 0.5]^d, score on [0.5, 1]^d);
- `harmonic`   — sums of sines with random frequencies, phases and amplitudes (OOD beyond the
  training interval);
- `feynman`    — the AI Feynman physics equations shipped in `actmine/data` (ID = lower part of each
  listed variable range, OOD = the part above it);
- `formula`    — any sympy expression with named variables and ID/OOD boxes (bring your own task).

`generate(task, seed, ...)` draws the points deterministically from (task, seed) and standardises
inputs and targets with statistics of the ID training points only, so nothing about the OOD split
leaks into training. Suites (named lists of tasks, with generator entries) are in `tasks.py`, which
builds on this module and on `generators.py`; this module imports neither.
"""

from __future__ import annotations

import ast
import csv
import difflib
import functools
import json
import math
import operator
import sys
import zlib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import sympy
import torch

Box = tuple[tuple[float, float], ...]


class SuiteError(ValueError):
    """A task or suite definition is malformed; the message names the task and the field."""


@dataclass(frozen=True)
class Task:
    """A target function with an ID box to train on and a disjoint OOD box to score on.

    `target` maps an array of shape (n, len(variables)) to shape (n,). `spec` holds the arguments
    of the family constructor that built the task: with the family name it rebuilds the task, and
    it is what cache keys and reports use to identify it.
    """

    name: str
    family: str
    variables: tuple[str, ...]
    target: Callable[[np.ndarray], np.ndarray] = field(compare=False, repr=False)
    id_box: Box
    ood_box: Box
    spec: Mapping[str, Any] = field(compare=False)
    description: str = ""

    @property
    def input_dim(self) -> int:
        return len(self.variables)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, **dict(self.spec)}


@dataclass(frozen=True)
class TaskData:
    """Standardised points of one task for one seed (float64 tensors; inputs (n, d), targets (n, 1))."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_id: torch.Tensor
    y_id: torch.Tensor
    x_ood: torch.Tensor
    y_ood: torch.Tensor


def stable_seed(*parts: object) -> int:
    """A seed derived from names and numbers that is the same in every process and version."""
    return zlib.crc32(json.dumps(parts, sort_keys=True, default=str).encode()) & 0x7FFFFFFF


def _sample_box(rng: np.random.Generator, box: Box, n: int) -> np.ndarray:
    low = np.array([lo for lo, _ in box])
    high = np.array([hi for _, hi in box])
    return low + (high - low) * rng.random((n, len(box)))


def generate(task: Task, seed: int, n_train: int, n_eval: int) -> TaskData:
    """Draw `n_train` ID training points, `n_eval` held-out ID points and `n_eval` OOD points.

    Deterministic in (task, seed). Inputs and targets are standardised with the mean and standard
    deviation of the ID training points only. The result is cached: candidates share it.
    """
    # The cache key holds the spec: Task equality ignores it, and two tasks that differ only in
    # spec (say n-D polynomials with the same name and different seeds) must not share data.
    return _generate(task, json.dumps(task.to_dict(), sort_keys=True, default=str), seed, n_train, n_eval)


@functools.lru_cache(maxsize=512)
def _generate(task: Task, spec_key: str, seed: int, n_train: int, n_eval: int) -> TaskData:
    rng = np.random.default_rng(stable_seed("task-data", task.name, task.to_dict(), seed))
    x_train = _sample_box(rng, task.id_box, n_train)
    x_id = _sample_box(rng, task.id_box, n_eval)
    x_ood = _sample_box(rng, task.ood_box, n_eval)
    ys = [np.asarray(task.target(x), dtype=np.float64).reshape(len(x)) for x in (x_train, x_id, x_ood)]
    for split, y in zip(("ID", "ID", "OOD"), ys):
        if not np.all(np.isfinite(y)):
            raise SuiteError(
                f"task {task.name!r}: the target is not finite everywhere on its {split} box; "
                "shrink the box so that the formula is defined on all of it"
            )
    x_mean, x_std = x_train.mean(0), x_train.std(0)
    y_mean, y_std = ys[0].mean(), ys[0].std()
    if y_std < 1e-12:
        raise SuiteError(f"task {task.name!r}: the target is constant on the ID box; nothing to learn")

    def to_tensor_x(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((x - x_mean) / x_std)

    def to_tensor_y(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((y - y_mean) / y_std)[:, None])

    return TaskData(
        to_tensor_x(x_train),
        to_tensor_y(ys[0]),
        to_tensor_x(x_id),
        to_tensor_y(ys[1]),
        to_tensor_x(x_ood),
        to_tensor_y(ys[2]),
    )


# --------------------------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------------------------


def _check_range(name: str, field_name: str, value: Sequence[float]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise SuiteError(f"task {name!r}: field {field_name!r} must be a pair [low, high], got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise SuiteError(f"task {name!r}: field {field_name!r} must satisfy low < high, got {value!r}")
    return lo, hi


def _check_seed(name: str, seed: Any) -> int:
    """A task's seed as a plain int: a numpy integer draws the same task as the int it equals."""
    if isinstance(seed, bool):
        raise SuiteError(f"task {name!r}: field 'seed' must be an integer, got {seed!r}")
    try:
        return operator.index(seed)
    except TypeError:
        raise SuiteError(f"task {name!r}: field 'seed' must be an integer, got {seed!r}") from None


#: the fixed tasks' size fields stop where their generators' do (docs/lab.md): a suite file's
#: `dim: 1000000` or `n_terms: 10**9` allocated gigabytes before any training
MAX_DIM, MAX_DEGREE, MAX_TERMS, MAX_TONES = 32, 8, 256, 16


def _draw_count(rng: np.random.Generator, value: int | Sequence[int], field_name: str, name: str, most: int) -> int:
    """``value`` itself, or a draw from its inclusive [low, high] range (task ``name``'s field
    ``field_name``), within [1, ``most``]."""
    try:
        if not isinstance(value, int) and len(value) != 2:  # [low, high], not a longer list read in part
            raise ValueError(value)
        lo, hi = (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))
    except (TypeError, ValueError, IndexError):
        raise SuiteError(
            f"task {name!r}: field {field_name!r} must be an integer or [low, high], got {value!r}"
        ) from None
    if not 1 <= lo <= hi <= most:
        raise SuiteError(f"task {name!r}: field {field_name!r} must satisfy 1 <= low <= high <= {most}, got {value!r}")
    return int(rng.integers(lo, hi + 1))


def polynomial(
    dim: int = 1,
    seed: int = 0,
    degree: int | Sequence[int] = (2, 5),
    n_terms: int | Sequence[int] = (4, 8),
    id_range: Sequence[float] = (0.0, 0.5),
    ood_range: Sequence[float] = (0.5, 1.0),
    name: str | None = None,
) -> Task:
    """A random polynomial with normal coefficients; degree (and term count) drawn from `seed`.

    1-D: all powers up to the degree, p(x) = Σ_k c_k x^k. n-D: a sparse sum of `n_terms` monomials
    with N(0, 1) coefficients, each a product of 2 to `degree` variables drawn with replacement (or one
    variable when the degree is 1), plus a linear part with N(0, 1/d) coefficients (its expected
    squared norm is 1 whatever the dimension). ID is the
    cube id_range^d and OOD the cube ood_range^d (by default [0, 0.5] and [0.5, 1], as in the paper).
    `degree` and `n_terms` are either a number or an inclusive [low, high] range to draw from.
    """
    name = name or f"poly{dim}d-s{seed}"
    seed = _check_seed(name, seed)
    if not isinstance(dim, int) or not 1 <= dim <= MAX_DIM:
        raise SuiteError(f"task {name!r}: field 'dim' must be an integer in [1, {MAX_DIM}], got {dim!r}")
    id_lo_hi = _check_range(name, "id_range", id_range)
    ood_lo_hi = _check_range(name, "ood_range", ood_range)
    rng = np.random.default_rng(stable_seed("polynomial", dim, seed))

    deg = _draw_count(rng, degree, "degree", name, MAX_DEGREE)
    if dim == 1:
        coefficients = rng.normal(size=deg + 1)
        powers = np.arange(deg + 1)

        def target(x: np.ndarray) -> np.ndarray:
            return (x[:, :1] ** powers) @ coefficients

        text = " + ".join(f"{c:.3g}·x^{k}" for k, c in enumerate(coefficients))
    else:
        terms = _draw_count(rng, n_terms, "n_terms", name, MAX_TERMS)
        linear = rng.normal(size=dim) / math.sqrt(dim)
        monomials = []
        for _ in range(terms):
            order = int(rng.integers(2, deg + 1)) if deg >= 2 else 1
            monomials.append((float(rng.normal()), rng.integers(0, dim, size=order)))

        def target(x: np.ndarray) -> np.ndarray:
            y = x @ linear
            for coefficient, variables in monomials:
                y = y + coefficient * np.prod(x[:, variables], axis=1)
            return y

        text = f"{terms} random monomials of degree ≤ {deg} in {dim} variables + a linear part"
    spec = {
        "dim": dim,
        "seed": seed,
        "degree": degree if isinstance(degree, int) else list(degree),
        "n_terms": n_terms if isinstance(n_terms, int) else list(n_terms),
        "id_range": list(id_lo_hi),
        "ood_range": list(ood_lo_hi),
        "name": name,
    }
    return Task(
        name,
        "polynomial",
        tuple(f"x{i}" for i in range(dim)),
        target,
        (id_lo_hi,) * dim,
        (ood_lo_hi,) * dim,
        spec,
        text,
    )


def harmonic(
    seed: int = 0,
    n_terms: int = 3,
    frequencies: Sequence[float] = (0.2, 0.7),
    id_range: Sequence[float] = (0.0, 2.0),
    ood_range: Sequence[float] = (2.0, 3.0),
    name: str | None = None,
) -> Task:
    """y = Σ_k a_k·sin(2π·f_k·x + φ_k): a sum of `n_terms` sines, frequencies f_k (cycles per unit)
    uniform in `frequencies`, phases uniform in [0, 2π), amplitudes uniform in [0.5, 1.5].

    Trains on `id_range` and scores on `ood_range`, beyond the training interval: a network that
    extrapolates must have learned (or be biased toward) the periodicity.
    """
    name = name or f"harmonic-s{seed}"
    seed = _check_seed(name, seed)
    if not isinstance(n_terms, int) or not 1 <= n_terms <= MAX_TONES:
        raise SuiteError(f"task {name!r}: field 'n_terms' must be an integer in [1, {MAX_TONES}], got {n_terms!r}")
    f_lo, f_hi = _check_range(name, "frequencies", frequencies)
    id_lo_hi = _check_range(name, "id_range", id_range)
    ood_lo_hi = _check_range(name, "ood_range", ood_range)
    rng = np.random.default_rng(stable_seed("harmonic", seed))
    freq = rng.uniform(f_lo, f_hi, size=n_terms)
    phase = rng.uniform(0.0, 2 * math.pi, size=n_terms)
    amplitude = rng.uniform(0.5, 1.5, size=n_terms)

    def target(x: np.ndarray) -> np.ndarray:
        return np.sin(2 * math.pi * x[:, :1] * freq + phase) @ amplitude

    text = " + ".join(f"{a:.2f}·sin(2π·{f:.2f}·x + {p:.2f})" for a, f, p in zip(amplitude, freq, phase))
    spec = {
        "seed": seed,
        "n_terms": n_terms,
        "frequencies": [f_lo, f_hi],
        "id_range": list(id_lo_hi),
        "ood_range": list(ood_lo_hi),
        "name": name,
    }
    return Task(name, "harmonic", ("x",), target, (id_lo_hi,), (ood_lo_hi,), spec, text)


# sympy reads names such as gamma, beta, E, I, S, N, Q as its own functions and constants; every
# variable is passed explicitly as a Symbol so that a formula means what its author wrote.
_SYMPY_FUNCTIONS = {
    "arcsin": sympy.asin,
    "arccos": sympy.acos,
    "arctan": sympy.atan,
    "ln": sympy.log,
    "exp": sympy.exp,
    "sqrt": sympy.sqrt,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "tanh": sympy.tanh,
    "log": sympy.log,
    "pi": sympy.pi,
    "abs": sympy.Abs,
}


#: The Python syntax a formula may use: numbers, names, + - * / ** and calls of _SYMPY_FUNCTIONS (and of
#: sympy's exact numbers, `Rational(1, 4)`).
#: sympy's parse_expr runs `eval` on the text, so anything else (attribute access, subscripts,
#: strings, lambdas, comprehensions) is refused before it gets there: a suite file is input, not code.
_FORMULA_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)


_NUMBER_CONSTRUCTORS = {"Integer": sympy.Integer, "Float": sympy.Float, "Rational": sympy.Rational}


def _check_formula_syntax(expression: str, task_name: str) -> None:
    def refuse(why: str) -> SuiteError:
        return SuiteError(
            f"task {task_name!r}: field 'expression' {why}; a formula is numbers, variables, "
            f"+ - * / ** and the functions and constants {', '.join(sorted(_SYMPY_FUNCTIONS))}"
        )

    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise SuiteError(f"task {task_name!r}: field 'expression' could not be parsed: {exc.msg}") from None
    except (RecursionError, MemoryError):  # Python's own parser, on thousands of chained terms
        raise refuse("is nested too deeply") from None
    for node in ast.walk(tree):
        if isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Load) + _FORMULA_OPERATORS):
            continue
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            continue
        if isinstance(node, ast.Name) and not node.id.startswith("_"):
            continue
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)  # sin(x), Rational(1, 4)
            and (node.func.id in _SYMPY_FUNCTIONS or node.func.id in _NUMBER_CONSTRUCTORS)
            and not node.keywords
            and not any(isinstance(a, ast.Starred) for a in node.args)
        ):
            continue
        if isinstance(node, ast.operator):
            hint = " (use ** for powers)" if isinstance(node, ast.BitXor) else ""
            raise refuse(f"uses the operator {type(node).__name__}, which is not allowed{hint}")
        raise refuse(f"uses {ast.unparse(node)[:60]!r}, which is not allowed")
    try:
        _fold_constants(tree.body, refuse)
    except RecursionError:
        raise refuse("is nested too deeply") from None


MAX_FORMULA_EXPONENT = 1000  # a constant exponent; sympy computes powers of constants exactly
_FOLDED = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b}


def _fold_constants(node: ast.AST, refuse) -> float | None:
    """The value of `node` as a float where it is a constant (None where it holds a variable or a
    function), refusing what sympy's exact arithmetic could not finish: a constant exponent above
    MAX_FORMULA_EXPONENT, or a constant beyond a float's range (`9**9**9` has 369 million digits)."""
    if isinstance(node, ast.Constant):
        try:
            return float(node.value)
        except OverflowError:
            raise refuse(f"holds a number beyond {sys.float_info.max:.3g}") from None
    if isinstance(node, ast.UnaryOp):
        value = _fold_constants(node.operand, refuse)
        return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
    if isinstance(node, ast.Call):
        values = [_fold_constants(a, refuse) for a in node.args]
        if node.func.id != "Rational" or len(values) != 2 or None in values or values[1] == 0:
            return values[0] if node.func.id in ("Integer", "Float") and len(values) == 1 else None
        return values[0] / values[1]
    if not isinstance(node, ast.BinOp):
        return None
    left, right = _fold_constants(node.left, refuse), _fold_constants(node.right, refuse)
    if isinstance(node.op, ast.Pow) and right is not None and abs(right) > MAX_FORMULA_EXPONENT:
        raise refuse(f"raises to the power {right:.6g}, above {MAX_FORMULA_EXPONENT}")
    if left is None or right is None:
        return None
    try:
        if isinstance(node.op, ast.Pow):
            value = abs(left) ** right  # the magnitude: a negative base's root is complex
        elif isinstance(node.op, ast.Div):
            value = left / right
        else:
            value = _FOLDED[type(node.op)](left, right)
    except ZeroDivisionError:
        return None  # sympy's zoo: refused later as not finite, cheaply
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise refuse(f"computes a constant beyond {sys.float_info.max:.3g} ({ast.unparse(node)[:60]!r})")
    return value


def parse_expression(expression: str, variables: Sequence[str], task_name: str = "?") -> sympy.Expr:
    """Parse `expression` with every name in `variables` bound to a plain Symbol.

    The text is checked against a closed Python syntax first (`_check_formula_syntax`): sympy's
    parser evaluates it, and a suite file may come from anyone.
    """
    _check_formula_syntax(expression, task_name)
    local = dict(_SYMPY_FUNCTIONS)
    local.update({v: sympy.Symbol(v) for v in variables})
    try:
        expr = sympy.parse_expr(
            expression, local_dict=local, global_dict={**_NUMBER_CONSTRUCTORS, "Symbol": sympy.Symbol}
        )
    except Exception as exc:  # sympy raises many kinds for bad text; all mean the same to the user
        raise SuiteError(f"task {task_name!r}: field 'expression' could not be parsed: {exc}") from None
    if not isinstance(expr, sympy.Expr):  # e.g. a bare function name such as "sin"
        raise SuiteError(f"task {task_name!r}: field 'expression' is not a formula of the variables: {expression!r}")
    unknown = sorted(str(s) for s in expr.free_symbols - {local[v] for v in variables})
    if unknown:
        raise SuiteError(
            f"task {task_name!r}: field 'expression' uses {', '.join(unknown)}, which are "
            f"not among the variables {list(variables)}; give each one an ID and OOD range"
        )
    return expr


def formula(
    expression: str,
    id: Mapping[str, Sequence[float]],
    ood: Mapping[str, Sequence[float]],
    name: str | None = None,
    family: str = "formula",
) -> Task:
    """Any closed-form target: a sympy expression over named variables with ID and OOD boxes.

    `id` and `ood` map each variable name to its [low, high] range; their keys, in order, are the
    network's inputs. Example: formula("exp(-x/3)*sin(2*x)", id={"x": [0, 3]}, ood={"x": [3, 6]}).
    """
    name = name or f"formula:{expression}"
    if not isinstance(expression, str) or not expression.strip():
        raise SuiteError(f"task {name!r}: field 'expression' must be a non-empty string")
    if not isinstance(id, Mapping) or not id:
        raise SuiteError(f"task {name!r}: field 'id' must map each variable to [low, high]")
    if not isinstance(ood, Mapping) or set(ood) != set(id):
        raise SuiteError(
            f"task {name!r}: field 'ood' must give a range for exactly the variables of 'id' ({', '.join(id)})"
        )
    variables = tuple(str(v) for v in id)
    id_box = tuple(_check_range(name, f"id.{v}", id[v]) for v in variables)
    ood_box = tuple(_check_range(name, f"ood.{v}", ood[v]) for v in variables)
    expr = parse_expression(expression, variables, name)
    fn = sympy.lambdify([sympy.Symbol(v) for v in variables], expr, modules="numpy")

    def target(x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):  # non-finite values are reported by `generate`
            return np.broadcast_to(np.asarray(fn(*x.T), dtype=np.float64), (len(x),))

    spec = {
        "expression": expression,
        "id": {v: list(r) for v, r in zip(variables, id_box)},
        "ood": {v: list(r) for v, r in zip(variables, ood_box)},
        "name": name,
    }
    return Task(name, family, variables, target, id_box, ood_box, spec, str(expr))


@dataclass(frozen=True)
class FeynmanEquation:
    filename: str
    output: str
    formula: str
    variables: tuple[tuple[str, float, float], ...]  # (name, low, high)


@functools.lru_cache(maxsize=1)
def feynman_equations() -> dict[str, FeynmanEquation]:
    """The AI Feynman list (actmine/data/FeynmanEquations.csv), keyed by its `Filename` (e.g. "I.6.2a").

    Variables come from the non-empty `vN_name` columns, not from `# variables`, which is wrong
    in six rows of the original file (see actmine/data/README.md).
    """
    text = resources.files("actmine.data").joinpath("FeynmanEquations.csv").read_text(encoding="utf-8-sig")
    equations = {}
    for row in csv.DictReader(text.splitlines()):
        if not (row.get("Filename") or "").strip():
            continue  # blank trailing rows
        variables = []
        for i in range(1, 11):
            var = (row.get(f"v{i}_name") or "").strip()
            if var:
                variables.append((var, float(row[f"v{i}_low"]), float(row[f"v{i}_high"])))
        equations[row["Filename"].strip()] = FeynmanEquation(
            row["Filename"].strip(), row["Output"].strip(), row["Formula"].strip(), tuple(variables)
        )
    return equations


def feynman(equation: str, id_fraction: float = 0.5, name: str | None = None) -> Task:
    """An AI Feynman equation (Udrescu & Tegmark 2020) by its file name, e.g. "I.6.2a".

    Each variable's listed range [low, high] is split at low + id_fraction·(high − low): ID is the
    lower part for every variable at once, OOD the part above it, so OOD points lie beyond the
    training box in every coordinate.
    """
    name = name or f"feynman-{equation}"
    equations = feynman_equations()
    if equation not in equations:
        close = ", ".join(difflib.get_close_matches(equation, equations, n=3)) or "none"
        raise SuiteError(
            f"task {name!r}: field 'equation': unknown AI Feynman equation {equation!r} "
            f"(close matches: {close}; see actmine/data/FeynmanEquations.csv)"
        )
    if not (isinstance(id_fraction, (int, float)) and 0.0 < id_fraction < 1.0):
        raise SuiteError(f"task {name!r}: field 'id_fraction' must be strictly between 0 and 1, got {id_fraction!r}")
    eq = equations[equation]
    split = {v: lo + id_fraction * (hi - lo) for v, lo, hi in eq.variables}
    task = formula(
        eq.formula,
        id={v: [lo, split[v]] for v, lo, hi in eq.variables},
        ood={v: [split[v], hi] for v, lo, hi in eq.variables},
        name=name,
    )
    spec = {"equation": equation, "id_fraction": id_fraction, "name": name}
    return Task(
        task.name,
        "feynman",
        task.variables,
        task.target,
        task.id_box,
        task.ood_box,
        spec,
        f"{eq.output} = {eq.formula}",
    )


FAMILIES: dict[str, Callable[..., Task]] = {
    "polynomial": polynomial,
    "harmonic": harmonic,
    "feynman": feynman,
    "formula": formula,
}
