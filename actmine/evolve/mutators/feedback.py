"""What the model is told after a refusal: for each reason code, the precise rule and a corrected example.

When a proposal is refused, the next prompt's failure section (`prompts/failures.txt`, filled in by
`llm.build_prompt`) names the reason, quotes one refusal message, and then the rule and a short
program that follows it, from `FIXES` — the one table of this feedback. It covers every code a
proposal can fail with: the static policy's (`candidate.source.REASON_CODES`), the probes'
(`candidate.probes.PROBE_CODES`), training's and the sandbox's, and the mutator's own `no_code`
(a test checks that the policy's and the probes' codes all have an entry, and that every example
passes the policy and the probes). A rule says what to do, not only what not to do; an example is
a complete program, because a model copies a whole program more reliably than it applies a remark.

Codes in `NOT_THE_ANSWER` (the service failed, not the answer) are not shown to the model: there
is nothing in them for it to learn.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fix:
    """The rule behind a reason code, and a complete program that follows it."""

    rule: str
    example: str


_SILU = "def activation_function(x):\n    return x * torch.sigmoid(1.702 * x)\n"
_SAFE_SINC = (
    "def activation_function(x):\n"
    "    small = x.abs() < 1e-4\n"
    "    safe = torch.where(small, torch.ones_like(x), x)   # no 0/0, not even in the unused branch\n"
    "    sinc = torch.where(small, torch.ones_like(x), torch.sin(safe) / safe)\n"
    "    return F.gelu(x) + 0.1 * x * sinc\n"
)
_CONSTANTS = (
    "BETA = 1.5\nSCALE = 1.0 / math.sqrt(2.0)\n\n"
    "def activation_function(x):\n    return SCALE * x * torch.sigmoid(BETA * x)\n"
)
_HELPER = (
    "def gate(x):\n    return 0.5 * (1.0 + torch.tanh(0.8 * x))\n\n"
    "def activation_function(x):\n    return x * gate(x)\n"
)
_NO_STATE = (
    "COEFFICIENTS = (0.1, 0.05)   # a tuple of numbers, not a list or a tensor\n\n"
    "def activation_function(x):\n"
    "    return F.silu(x) + COEFFICIENTS[0] * torch.sin(x) + COEFFICIENTS[1] * torch.sin(2.0 * x)\n"
)
_WHERE = "def activation_function(x):\n    return torch.where(x > 0, x, 0.1 * torch.expm1(x.clamp(max=0.0)))\n"
_CHEAP = "def activation_function(x):\n    return F.softplus(x) - math.log(2.0)\n"
_TRAINABLE = "def activation_function(x):\n    return F.gelu(x) + 0.05 * torch.sin(3.0 * x)\n"
_FILE = "def activation_function(x):\n    return F.silu(x)\n"

_OUT_OF_RANGE = (
    "The activation must be finite, and so must its gradient, for every input between -1e4 and "
    "1e4 (and never NaN beyond): guard divisions and logarithms with a safe operand, clamp the "
    "argument of exp, and keep growth at most polynomial so that training does not diverge."
)

FIXES: dict[str, Fix] = {
    # ---- the static policy (candidate.source.REASON_CODES) ----------------------------------
    "too_long": Fix(
        "The program must fit in the size limit above: write the formula, without long comments, "
        "docstrings, tests or unused helpers.",
        _SILU,
    ),
    "syntax_error": Fix(
        "The code block must be valid Python 3 on its own: complete expressions, balanced "
        "brackets, consistent indentation, and no prose, ellipses or diff markers (+/-) inside "
        "the block.",
        _SILU,
    ),
    "import": Fix(
        "Import nothing: `torch`, `math` and `F` (torch.nn.functional) are already there. Write "
        "`math.pi` for `np.pi` and `F.silu` for `nn.functional.silu`.",
        "def activation_function(x):\n    return F.silu(x) + 0.1 * torch.sin(math.pi * x)\n",
    ),
    "dunder": Fix(
        "No name, attribute, parameter or keyword that starts with `__` (`__name__`, `x.__class__`, "
        "`__init__`): the program is a few functions, nothing more.",
        _SILU,
    ),
    "forbidden_builtin": Fix(
        "Use only plain builtins such as abs, min, max, float, int, range, len; never open, "
        "eval, exec, compile, getattr, setattr, type, globals, vars or print.",
        _WHERE,
    ),
    "torch_forbidden": Fix(
        "Use only pure tensor math of torch, torch.special, F and math (torch.sin, torch.where, "
        "torch.special.erf, F.softplus, math.log); not torch.nn modules, torch.jit, "
        "torch.autograd, torch._C, devices, files or global settings.",
        _WHERE,
    ),
    "module_alias": Fix(
        "Write `torch`, `F` and `math` only as the start of a call or a constant "
        "(`torch.tanh(x)`, `math.pi`): never alone (`t = torch`, `f(math)`), never a sub-namespace "
        "as a value (`s = torch.special`), never assigned to. Define a helper function instead.",
        _HELPER,
    ),
    "attribute_assignment": Fix(
        "Assign to no attribute (`x.data = ...`, `torch.foo = ...`, `self.a = ...`): "
        "compute new tensors and return them.",
        _HELPER,
    ),
    "unbounded_loop": Fix(
        "No while loops. A for loop or comprehension runs over `range()` with integer "
        "literals (at most 10,000 steps) or over a literal tuple; better, write one tensor "
        "expression without a loop.",
        "def activation_function(x):\n    y = F.gelu(x)\n    for k in range(1, 4):\n"
        "        y = y + 0.05 * torch.sin(k * x) / k\n    return y\n",
    ),
    "forbidden_statement": Fix(
        "At the top level only `def` and constant assignments: no class (write a function "
        "instead of an nn.Module), no decorator, with, global, yield, async or match, and "
        'no `if __name__ == "__main__":` block or other tests.',
        _CONSTANTS,
    ),
    "dangerous_attribute": Fix(
        "Use no in-place, private or state-changing tensor attributes (`x.add_()`, "
        "`x.requires_grad_()`, `x.data`, `x.grad`, `x._base`, `torch.empty`): use the "
        "out-of-place operations (`x + 1`, `torch.zeros_like(x)`).",
        _WHERE,
    ),
    "missing_function": Fix(
        "Define `def activation_function(x):` at the top level of the program, with the one "
        "positional parameter `x` (not a method, not a lambda, no other required parameter).",
        _SILU,
    ),
    "undefined_name": Fix(
        "Use only the names you define (locals, your own top-level functions and constants), "
        "`torch`, `math`, `F` and plain builtins: no `np`, `nn`, `scipy`, `self`, and no name "
        "you did not define in this program.",
        "PI = math.pi\n\ndef activation_function(x):\n    return F.silu(x) + 0.1 * torch.sin(PI * x)\n",
    ),
    "mutable_state": Fix(
        "Top-level values and default arguments are immutable constants: numbers, strings, tuples "
        "of them, or math of them. No list, dict, tensor or call result at the top level "
        "(`W = torch.tensor(...)`): build tensors inside the function.",
        _NO_STATE,
    ),
    "randomness": Fix(
        "No randomness (torch.rand*, dropout, bernoulli_, normal_, ...): the same input must give "
        "the same output. A deterministic oscillation often does what noise was meant to.",
        _TRAINABLE,
    ),
    "python_escape": Fix(
        "Stay in tensor operations: no `.item()`, `.tolist()`, `.numpy()`, no `str` or f-string "
        "of tensor values, no map/filter or Python loops over elements. Use torch.where, "
        "torch.clamp and masks instead of Python conditions on values.",
        _WHERE,
    ),
    "costly_constant": Fix(
        "Top-level constants and defaults are cheap values: plain numbers or math of a few "
        "numbers; no huge powers (`10 ** 10 ** 6`), long strings or long tuples.",
        _CONSTANTS,
    ),
    "load_error": Fix(
        "Running the program's top level raised an exception: keep it to constant assignments and "
        "definitions that cannot fail (no math.log(0), no division by zero, no name used before "
        "it is assigned).",
        _CONSTANTS,
    ),
    "not_python": Fix("A program is Python source text that defines activation_function(x).", _FILE),
    "not_found": Fix("A program is Python source text that defines activation_function(x), not a file name.", _FILE),
    "unreadable": Fix("A program is UTF-8 Python source text that defines activation_function(x).", _FILE),
    "stale_program_file": Fix(
        "A program is plain Python source text that defines activation_function(x), not a generated program file.",
        _FILE,
    ),
    "bad_program_file": Fix(
        "A program is plain Python source text that defines activation_function(x), not a generated program file.",
        _FILE,
    ),
    "unknown_program": Fix("A program is plain Python source text that defines activation_function(x).", _FILE),
    # ---- the probes (candidate.probes.PROBE_CODES) -----------------------------------------
    "bad_output": Fix(
        "Return a floating-point torch.Tensor (not a tuple, a number or None); for a constant "
        "term use `torch.full_like(x, c)` or `c + 0.0 * x`.",
        _SILU,
    ),
    "bad_shape": Fix(
        "Return a tensor of exactly the input's shape and dtype: no reduction, reshaping, new "
        "dimension or dtype change.",
        _SILU,
    ),
    "non_finite": Fix(_OUT_OF_RANGE, _SAFE_SINC),
    "non_finite_gradient": Fix(
        "The gradient must be finite too: torch.where does not protect the gradient of the "
        "branch it discards, so make the operand safe inside it (as below); use "
        "`torch.sqrt(x * x + 1e-6)` rather than `torch.sqrt(x.abs())` near 0, and clamp exp "
        "arguments.",
        _SAFE_SINC,
    ),
    "no_gradient": Fix(
        "The output must be differentiable in x: no `.detach()`, `torch.no_grad()`, integer casts "
        "or argmax on the path from x to the output.",
        _SILU,
    ),
    "zero_gradient": Fix(
        "The gradient must not be zero (almost) everywhere: a step function (sign, floor, round, "
        "heaviside, a comparison cast to float) cannot be the whole output; add a smooth term.",
        "def activation_function(x):\n    return x + 0.1 * torch.tanh(4.0 * torch.sin(x))\n",
    ),
    "nondeterministic": Fix(
        "The same input must give the same output every time: no randomness, no state kept "
        "between calls, no dependence on time or global settings.",
        _TRAINABLE,
    ),
    "inconsistent_function": Fix(
        "Compute the same function whatever the input's shape, size or number of "
        "dimensions, and the same in training as when probed: do not branch on "
        "`x.dim()`, `x.numel()`, `x.shape` or `x.requires_grad`.",
        _SILU,
    ),
    "modifies_input": Fix(
        "Never change `x` in place (`x += 1`, `x.clamp_()`, `x[x < 0] = 0`): build new tensors "
        "(`y = x + 1`, `torch.where(...)`).",
        _WHERE,
    ),
    "batch_dependent": Fix(
        "Elementwise only: each output depends only on the input at the same position; no mean, "
        "std, sum, max, sort or norm over the tensor.",
        _TRAINABLE,
    ),
    "over_flop_budget": Fix(
        "Too many operations per element: use fewer terms and fewer transcendental functions "
        "(exp, sin, tanh and erf count as several operations each), and no long loops.",
        _CHEAP,
    ),
    "over_memory_budget": Fix(
        "Too many intermediate tensors kept for the backward pass: use fewer intermediate "
        "results and fused functions (`F.silu(x)` rather than `x * torch.sigmoid(x)`), and "
        "no stacks or concatenations of many copies of x.",
        _CHEAP,
    ),
    "runtime_error": Fix(
        "The function raised an exception on a float tensor: call torch functions on tensors "
        "(`torch.sin(x)`, not `math.sin(x)`), keep shapes matching, and check the function on "
        "tensors of shapes (n,), (b, h) and (m, b, h).",
        _TRAINABLE,
    ),
    "memory_limit": Fix(
        "The function ran out of memory: no large intermediate tensors (outer products, "
        "`torch.arange` of a data-dependent size, many expanded copies of x).",
        _CHEAP,
    ),
    "duplicate": Fix(
        "This computes the same function as an already evaluated program: change the mathematical "
        "form (the asymptotes, a perturbation, the gate), not only its spelling.",
        _TRAINABLE,
    ),
    # ---- training ---------------------------------------------------------------------------
    "screen_failed": Fix(
        "The networks could not learn the screening task: the activation must be non-constant "
        "and well scaled on [-3, 3] (slope near 1 somewhere, no flat or exploding region); "
        "perturb a GELU/SiLU-like shape rather than replacing it.",
        _TRAINABLE,
    ),
    "global_state": Fix(
        "Do not change torch's global state (torch.set_*, manual_seed, the default dtype, grad "
        "mode): compute and return a tensor, nothing else.",
        _SILU,
    ),
    # ---- the sandbox ------------------------------------------------------------------------
    "timeout": Fix(
        "The evaluation took too long: a few tensor operations per call, no long loops and no recursion.", _CHEAP
    ),
    "cpu_limit": Fix(
        "The evaluation used too much CPU time: a few tensor operations per call, no long loops and no recursion.",
        _CHEAP,
    ),
    "killed": Fix("The worker was killed, usually for using too much memory: no large intermediate tensors.", _CHEAP),
    "worker_crashed": Fix(
        "The worker crashed: no recursion (a function that calls itself) and no deeply nested expressions.", _CHEAP
    ),
    "worker_died": Fix(
        "The worker process died: keep to plain tensor math, without recursion or huge allocations.", _CHEAP
    ),
    "answer_too_large": Fix(
        "The evaluation's report was too large: raise no exceptions with huge messages; keep to plain tensor math.",
        _CHEAP,
    ),
    "bad_worker_answer": Fix(
        "The evaluation's report was unreadable: keep to plain tensor math that returns a tensor.", _CHEAP
    ),
    # ---- the mutator ------------------------------------------------------------------------
    "no_code": Fix(
        "Answer with one short paragraph of rationale, then the COMPLETE program in ONE ```python "
        "block that defines `activation_function(x)`.",
        _SILU,
    ),
}

#: Failures of the service, not of the answer (the model was unreachable, the mutator or the
#: executor failed, the budget ran out, a worker was killed from outside twice): not shown in
#: prompts, since the model can learn nothing from them.
NOT_THE_ANSWER = frozenset(
    {"llm_unavailable", "mutator_error", "budget", "stopped", "executor_error", "worker_lost", "worker_start_timeout"}
)


def reason_code(reason: str) -> str:
    """The code of a failure reason written `stage:code` (or a bare code)."""
    return reason.rsplit(":", 1)[-1]


def fix_for(reason: str) -> Fix | None:
    """The rule and example for a failure reason (`stage:code` or a bare code); None for an unknown code."""
    return FIXES.get(reason_code(reason))
