"""The offline mutators' screen: a quick in-process check of a candidate before the sandbox.

`screen` runs an expression (an `Evaluable` of `actmine.language`, which never executes candidate
source) on the probe points of `actmine.candidate.probes` and says why it would fail the probes or
be useless, in a few milliseconds; `values` gives its values there, and `cost_bound` bounds its
cost from the expression alone so that small expressions skip the slower cost measurement. Its
names are importable from `actmine.evolve.mutators.expressions` too.
"""

from __future__ import annotations

import ast
from typing import Callable

import torch

from actmine.candidate.probes import ProbeBudget, measure_cost, probe_points
from actmine.language import ops as language_ops
from actmine.language.interpreter import EvaluationError, Evaluable, Unsupported, spelling_of
from actmine.language.ops import TRANSCENDENTAL_WEIGHT

from .expression_nodes import const_value, depends_on


def evaluable_program(module: ast.Module) -> Evaluable | None:
    """The program as an `Evaluable` (`actmine.language.program`: module-level assignments, helper
    functions and one `def activation_function(x)`, each function made of assignments to names and
    a final return), or None when it is outside that subset."""
    return Evaluable.from_module(module)


_POINTS: torch.Tensor | None = None


def screen_points() -> torch.Tensor:
    """The probe points of `run_probes` (float32), computed once."""
    global _POINTS
    if _POINTS is None:
        _POINTS = probe_points(torch.float32)
    return _POINTS


def values(function: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor | None:
    """The function's float64 values on the screen points, or None if it cannot be evaluated."""
    try:
        with torch.no_grad():
            return function(screen_points().clone()).detach().double()
    except (Unsupported, EvaluationError, RuntimeError, TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None


def screen(
    function: Callable[[torch.Tensor], torch.Tensor],
    reference: torch.Tensor | None = None,
    budget: ProbeBudget | None = None,
    require_nonlinear: bool = False,
    report: dict | None = None,
) -> str | None:
    """Why `function` (an `Evaluable` or any trusted callable) would fail the probes or be useless,
    or None when it looks fine. Raises `Unsupported` when it cannot be interpreted.

    Checks, on the probe points in float32: it runs, returns a tensor of the input's shape, finite
    values and gradients, a nonzero gradient, not constant on [−10, 10], within the FLOP and
    memory `budget` (default `ProbeBudget()`), different from `reference` (values on the points,
    e.g. the parent's) and, with `require_nonlinear`, not an affine function of x. When it passes
    and `report` is a dict, `report["values"]` gets the float64 values on the points (as `values`
    gives them), `report["flops"]` and `report["saved"]` the cost per element (measured with
    `probes.measure_cost`, or the `cost_bound` when that is already within the budget) and
    `report["exact"]` whether they were measured.
    """
    budget = budget or ProbeBudget()
    x = screen_points().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            y = function(x)
            if not isinstance(y, torch.Tensor) or y.shape != x.shape or not y.dtype.is_floating_point:
                return "not a float tensor of the input's shape"
            if not torch.isfinite(y).all():
                return "non-finite values"
            if not y.requires_grad:
                return "no gradient"
            (gradient,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
    except EvaluationError as exc:
        return f"raises ({exc})"
    except (RuntimeError, TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        return f"raises ({type(exc).__name__})"
    if gradient is None or not torch.isfinite(gradient).all():
        return "non-finite or missing gradient"
    if not gradient.abs().gt(0).any():
        return "zero gradient"
    y = y.detach().double()
    grid = y[:401]  # the first 401 probe points are linspace(-10, 10, 401)
    if float(grid.max() - grid.min()) < 1e-4:
        return "constant"
    if require_nonlinear:
        xs = screen_points()[:401].double()
        design = torch.stack([torch.ones_like(xs), xs], 1)
        fit = torch.linalg.lstsq(design, grid.unsqueeze(1)).solution
        if float((design @ fit).squeeze(1).sub(grid).abs().max()) < 1e-3 * (1 + float(grid.abs().max())):
            return "affine"
    if (
        reference is not None
        and reference.shape == y.shape
        and float((y - reference).abs().max()) < 1e-6 * (1 + float(reference.abs().max()))
    ):
        return "the same function as the parent"
    bound = cost_bound(function) if isinstance(function, Evaluable) else None
    if (
        bound is not None
        and bound[0] <= budget.max_flops_per_element
        and bound[1] <= budget.max_saved_bytes_per_element
    ):
        flops, saved, exact = *bound, False  # certainly within the budget: no need to measure
    else:
        exact = True
        try:
            cost = measure_cost(function, size=256)
        except Exception as exc:  # ProbeFailure, or an evaluation error on the cost input
            return f"cost measurement failed ({type(exc).__name__})"
        flops, saved = cost.flops_per_element, cost.saved_bytes_per_element
        if round(flops, 2) > budget.max_flops_per_element:
            return f"over the FLOP budget ({flops:g})"
        if round(saved, 2) > budget.max_saved_bytes_per_element:
            return f"over the memory budget ({saved:g} B)"
    if report is not None:
        report.update(values=y, flops=flops, saved=saved, exact=exact)
    return None


#: spelling -> (weight, kernels) of the calls `cost_bound` models: the language's one-tensor
#: elementwise ops, whose forward cost per element (`weight`, e.g. 8 for torch.tanh, 3 for F.softsign)
#: and number of new tensors (`kernels`) the table states and tests/test_language_ops.py measures.
_CALL_COST: dict[str, tuple[int, int]] = {
    spelling: (op.weight, op.kernels)
    for op in language_ops.unary_elementwise()
    for spelling in op.spellings
    if not spelling.startswith("math.")
}


def cost_bound(function: Evaluable) -> tuple[float, float] | None:
    """Upper bounds on what `probes.measure_cost` reports (forward FLOPs and saved bytes per element,
    float32), from the expression alone; None when it uses a call or node this does not model.

    A call of a one-tensor elementwise op (`_CALL_COST`) costs its table weight and makes its
    table's number of kernels' new tensors; an arithmetic operator with a tensor operand or a unary
    minus weighs at most `TRANSCENDENTAL_WEIGHT` (8: `**` is a pow) and makes one new tensor;
    autograd can save at most the tensors that exist, 4 bytes each per element.
    """
    tensors = {function.param}
    flops = 0
    made = 0

    def count(node: ast.AST) -> bool:
        nonlocal flops, made
        if const_value(node) is not None or isinstance(node, (ast.Constant, ast.Name)):
            return True
        if not depends_on(node, tensors):
            return True  # Python scalar arithmetic: no tensor operation
        if isinstance(node, ast.BinOp):
            flops, made = flops + TRANSCENDENTAL_WEIGHT, made + 1
            return count(node.left) and count(node.right)
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.UAdd):
                flops, made = flops + TRANSCENDENTAL_WEIGHT, made + 1
            return count(node.operand)
        if isinstance(node, ast.Call) and not node.keywords:
            cost = _CALL_COST.get(spelling_of(node.func) or "")
            if cost is not None:
                flops, made = flops + cost[0], made + cost[1]
                return all(count(arg) for arg in node.args)
        return False

    for target, value in function.body:
        if not count(value):
            return None
        tensors.add(target)
    if function.setup and depends_on(function.expr, {t for t, _ in function.setup}):
        return None  # module-level names are scalars here, but be safe
    if not count(function.expr):
        return None
    return float(flops), 4.0 * made
