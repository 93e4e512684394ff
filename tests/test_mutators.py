"""The offline mutators (`symbolic`, `random`) and their shared expression helpers."""

from __future__ import annotations

import ast
import math
import random
import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from actmine.candidate.probes import ProbeFailure, run_probes
from actmine.candidate.source import check_source, compile_candidate
from actmine.evolve.mutators import MUTATORS, Parent, Proposal, get_mutator
from actmine.evolve.mutators import expressions as ex
from actmine.evolve.mutators.random_search import RandomMutator
from actmine.evolve.mutators.symbolic import DEFAULT_WEIGHTS, OPERATORS, SymbolicMutator

RELU = "def activation_function(x):\n    return torch.relu(x)\n"
PAPER = {
    "gelu_sine": "def activation_function(x):\n    return F.gelu(x) + 0.1*torch.sin(x)\n",
    "gelu_sinc": "def activation_function(x):\n    return F.gelu(x)*(1 + 0.5*torch.sinc(x))\n",
    "gmtu": "def activation_function(x):\n    return torch.tanh(1.5*x)*torch.exp(-0.2*x*x) + 0.1*x\n",
}
STARTS = {"relu": RELU, **PAPER}
INSPIRATIONS = [Parent(source, id=i) for i, source in enumerate(STARTS.values())]
GRID = torch.linspace(-5, 5, 101)


def return_expr(source: str) -> ast.expr:
    func = [s for s in ast.parse(source).body if isinstance(s, ast.FunctionDef) and s.name == "activation_function"][-1]
    return func.body[-1].value


def subtrees(expr: ast.expr, min_nodes: int = 2) -> set[str]:
    return {
        ast.unparse(node) for node in ast.walk(expr) if isinstance(node, ast.expr) and ex.count_nodes(node) >= min_nodes
    }


def call_spellings(source: str) -> list[str]:
    return sorted(ex.spelling_of(n.func) or "?" for n in ast.walk(return_expr(source)) if isinstance(n, ast.Call))


def assert_valid(proposal: Proposal, mutator: str) -> torch.Tensor:
    """Policy, compilation, shape on the grid, a one-line rationale; returns f(GRID)."""
    assert isinstance(proposal, Proposal) and proposal.mutator == mutator
    check_source(proposal.source)
    y = compile_candidate(proposal.source)(GRID)
    assert isinstance(y, torch.Tensor) and y.shape == GRID.shape
    assert proposal.rationale.strip() and "\n" not in proposal.rationale
    return y


def passes_probes(source: str) -> bool:
    try:
        run_probes(compile_candidate(source))
        return True
    except ProbeFailure:
        return False


def forced(op: str, **options) -> SymbolicMutator:
    return SymbolicMutator(weights={op: 1.0}, **options)


# ------------------------------------------------------------------------------------------------
# Registration, seed, options
# ------------------------------------------------------------------------------------------------


def test_registered_by_name():
    assert isinstance(get_mutator("symbolic"), SymbolicMutator)
    assert isinstance(get_mutator("random", max_depth=3), RandomMutator)
    assert {"symbolic", "random"} <= set(MUTATORS)
    assert get_mutator("symbolic", weights={"constants": 1.0}, max_nodes=30).max_nodes == 30


def test_no_parent_gives_relu_seed():
    proposal = SymbolicMutator().propose(None, [], random.Random(0))
    assert proposal == Proposal(RELU, "seed", "symbolic")


@pytest.mark.parametrize(
    "options",
    [
        {"weights": {"mutate_everything": 1.0}},
        {"weights": {"wrap": -1.0}},
        {"weights": {"wrap": 0.0}},
        {"weights": {"wrap": float("nan")}},
        {"max_nodes": 2},
        {"max_nodes": True},
    ],
)
def test_symbolic_rejects_bad_options(options):
    with pytest.raises(ValueError):
        SymbolicMutator(**options)


@pytest.mark.parametrize("options", [{"max_depth": 0}, {"max_nodes": 1}, {"max_depth": 2.5}])
def test_random_rejects_bad_options(options):
    with pytest.raises(ValueError):
        RandomMutator(**options)


def test_default_weights_cover_every_operator():
    assert set(DEFAULT_WEIGHTS) == set(OPERATORS) and all(w > 0 for w in DEFAULT_WEIGHTS.values())


# ------------------------------------------------------------------------------------------------
# Validity over long chains
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", list(STARTS))
def test_symbolic_chain_of_200_stays_valid(start):
    mutator, rng, parent = SymbolicMutator(), random.Random(11), Parent(STARTS[start])
    probed = passed = 0
    for i in range(200):
        proposal = mutator.propose(parent, INSPIRATIONS, rng)
        assert_valid(proposal, "symbolic")
        assert ex.count_nodes(return_expr(proposal.source)) <= mutator.max_nodes
        if i % 4 == 0:  # the probes on every fourth proposal keep the test fast
            probed += 1
            passed += passes_probes(proposal.source)
        parent = Parent(proposal.source, rationale=proposal.rationale)
    assert passed / probed >= 0.8, f"only {passed}/{probed} proposals from {start} pass the probes"


def test_random_proposals_are_valid_and_mostly_pass_probes():
    mutator, rng = RandomMutator(), random.Random(5)
    passed, probed, seen = 0, 0, set()
    parent = Parent(RELU)
    for _ in range(200):
        proposal = mutator.propose(parent, INSPIRATIONS, rng)
        y = assert_valid(proposal, "random")
        match = re.fullmatch(r"random expression \(depth (\d+), (\d+) nodes\)", proposal.rationale)
        assert match and 1 <= int(match[1]) <= mutator.max_depth and int(match[2]) <= mutator.max_nodes
        assert ex.count_nodes(return_expr(proposal.source)) == int(match[2])
        assert float(y.max() - y.min()) > 0  # depends on x
        if len(seen) % 2 == 0:
            probed += 1
            passed += passes_probes(proposal.source)
        seen.add(proposal.source)
        parent = Parent(proposal.source)
    assert passed / probed >= 0.5
    assert len(seen) >= 150  # fresh expressions, not a handful repeated


def test_random_ignores_parent_and_inspirations():
    a = RandomMutator().propose(Parent(PAPER["gmtu"]), INSPIRATIONS, random.Random(3))
    b = RandomMutator().propose(None, [], random.Random(3))
    assert a.source == b.source


def test_random_unscreened_is_still_policy_valid():
    mutator, rng = RandomMutator(max_depth=3, max_nodes=20, screen=False), random.Random(2)
    for _ in range(50):
        assert_valid(mutator.propose(None, [], rng), "random")


# ------------------------------------------------------------------------------------------------
# Determinism
# ------------------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), start=st.sampled_from(list(STARTS)))
def test_same_seed_same_proposal(seed, start):
    for make in (SymbolicMutator, RandomMutator):
        a = make().propose(Parent(STARTS[start]), INSPIRATIONS, random.Random(seed))
        b = make().propose(Parent(STARTS[start]), INSPIRATIONS, random.Random(seed))
        assert a == b


def test_different_seeds_mostly_differ():
    for make in (SymbolicMutator, RandomMutator):
        mutator = make()
        for start in STARTS.values():
            sources = [mutator.propose(Parent(start), INSPIRATIONS, random.Random(seed)).source for seed in range(20)]
            assert len(set(sources)) >= 12, (make.__name__, start, len(set(sources)))


# ------------------------------------------------------------------------------------------------
# Each operator does what it says
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", list(STARTS))
def test_perturb_term_adds_a_bounded_term(start):
    wide = torch.linspace(-50, 50, 2001, dtype=torch.float64)
    base = compile_candidate(STARTS[start])(wide)
    for seed in range(8):
        proposal = forced("perturb_term").propose(Parent(STARTS[start]), [], random.Random(seed))
        assert re.match(r"(add|subtract) a ", proposal.rationale), proposal.rationale
        delta = (compile_candidate(proposal.source)(wide) - base).abs()
        assert 1e-3 < float(delta.max()) <= 0.5 + 1e-9, (proposal.source, float(delta.max()))


@pytest.mark.parametrize("start", list(STARTS))
def test_swap_unary_changes_a_call_name(start):
    for seed in range(8):
        proposal = forced("swap_unary").propose(Parent(STARTS[start]), [], random.Random(seed))
        assert proposal.rationale.startswith("swap ")
        assert call_spellings(proposal.source) != call_spellings(STARTS[start])
        assert len(call_spellings(proposal.source)) == len(call_spellings(STARTS[start]))


@pytest.mark.parametrize("start", list(STARTS))
def test_wrap_adds_a_unary_call(start):
    for seed in range(6):
        proposal = forced("wrap").propose(Parent(STARTS[start]), [], random.Random(seed))
        assert proposal.rationale.startswith("wrap ")
        assert len(call_spellings(proposal.source)) > len(call_spellings(STARTS[start]))


@pytest.mark.parametrize("start", list(STARTS))
def test_gate_multiplies_by_a_gate(start):
    for seed in range(6):
        proposal = forced("gate").propose(Parent(STARTS[start]), [], random.Random(seed))
        assert proposal.rationale.startswith("multiply ")
        assert re.search(r"torch\.sigmoid|torch\.tanh|1 [+-] ", proposal.source)
        assert ex.count_nodes(return_expr(proposal.source)) > ex.count_nodes(return_expr(STARTS[start]))


def test_gate_reaches_the_gelu_sinc_form():
    """From GELU, one gate edit can give GELU·(1 + a·sinc(b·x)), the paper's GELU-Sinc shape."""
    gelu = "def activation_function(x):\n    return F.gelu(x)\n"
    form = re.compile(r"return F\.gelu\(x\) \* \(1 [+-] [\d.]+ \* torch\.sinc\(([\d.]+ \* )?x\)\)")
    sources = [forced("gate").propose(Parent(gelu), [], random.Random(s)).source for s in range(60)]
    assert any(form.search(source) for source in sources)


@pytest.mark.parametrize("start", list(PAPER))
def test_constants_change_values_but_keep_structure(start):
    parent_expr = return_expr(PAPER[start])
    for seed in range(10):
        proposal = forced("constants").propose(Parent(PAPER[start]), [], random.Random(seed))
        assert proposal.rationale.startswith("tune constant")
        child_expr = return_expr(proposal.source)
        assert ex.masked_structure(child_expr) == ex.masked_structure(parent_expr)
        assert ast.unparse(child_expr) != ast.unparse(parent_expr)


def test_constants_insert_a_scale_where_there_is_none():
    for seed in range(5):
        proposal = forced("constants").propose(Parent(RELU), [], random.Random(seed))
        assert proposal.rationale.startswith("insert a scale constant")
        assert ex.constant_sites(return_expr(proposal.source))


def test_crossover_splices_from_the_inspiration():
    parent, inspiration = PAPER["gmtu"], PAPER["gelu_sinc"]
    donor = subtrees(return_expr(inspiration)) - subtrees(return_expr(parent))
    modes = set()
    for seed in range(20):
        proposal = forced("crossover").propose(Parent(parent), [Parent(inspiration, id=7)], random.Random(seed))
        assert proposal.rationale.startswith("crossover: ") and "#7" in proposal.rationale
        assert subtrees(return_expr(proposal.source)) & donor, proposal.source
        modes.add(proposal.rationale.split()[1])
    assert modes == {"replace", "average", "add"}


def test_crossover_renames_the_inspirations_input_and_inlines_its_locals():
    parent = "def activation_function(inp):\n    return torch.tanh(inp)\n"
    inspiration = "def activation_function(z):\n    g = torch.sigmoid(1.702 * z)\n    return z * g\n"
    for seed in range(10):
        proposal = forced("crossover").propose(Parent(parent), [Parent(inspiration)], random.Random(seed))
        assert_valid(proposal, "symbolic")
        assert ex.names_in(return_expr(proposal.source)) <= {"inp", "torch", "F"}
        assert "1.702 * inp" in proposal.source  # in every subexpression of the inspiration


def test_crossover_without_inspirations_falls_back_to_constants():
    proposal = forced("crossover").propose(Parent(PAPER["gmtu"]), [], random.Random(0))
    assert proposal.rationale.startswith("tune constant")


@pytest.mark.parametrize("start", list(PAPER) + ["big"])
def test_simplify_reduces_the_node_count(start):
    source = PAPER.get(start) or (
        "def activation_function(x):\n    return F.gelu(x) * torch.sigmoid(1.2 * x) + "
        "0.1 * torch.sin(2 * x) - 0.2 * torch.exp(-0.5 * x * x) + torch.tanh(x) * 0.05\n"
    )
    before = ex.count_nodes(return_expr(source))
    for seed in range(8):
        proposal = forced("simplify").propose(Parent(source), [], random.Random(seed))
        assert proposal.rationale.startswith("simplify: ")
        assert ex.count_nodes(return_expr(proposal.source)) < before


def test_oversized_parent_is_simplified():
    terms = " + ".join(f"0.1 * torch.sin({k} * x)" for k in range(1, 12))
    source = f"def activation_function(x):\n    return F.gelu(x) + {terms}\n"
    mutator, rng = SymbolicMutator(max_nodes=30), random.Random(1)
    nodes = [ex.count_nodes(return_expr(source))]
    parent = Parent(source)
    for _ in range(20):
        proposal = mutator.propose(parent, [], rng)
        nodes.append(ex.count_nodes(return_expr(proposal.source)))
        assert nodes[-1] <= max(30, nodes[-2])
        parent = Parent(proposal.source)
    assert nodes[-1] < nodes[0]


# ------------------------------------------------------------------------------------------------
# Programs that are more than one return
# ------------------------------------------------------------------------------------------------


def test_multi_statement_programs_keep_their_other_statements():
    source = (
        "ALPHA = 0.1\n\ndef helper(t):\n    return torch.sigmoid(t)\n\n"
        "def activation_function(x):\n    y = torch.tanh(x)\n    return y * x + ALPHA * helper(x)\n"
    )
    rng, parent = random.Random(4), Parent(source)
    for _ in range(20):
        proposal = SymbolicMutator().propose(parent, [], rng)
        assert_valid(proposal, "symbolic")
        assert "def helper(t):" in proposal.source and "ALPHA = 0.1" in proposal.source
        assert "    y = torch.tanh(x)" in proposal.source
        parent = Parent(proposal.source)


def test_function_without_single_final_return_is_wrapped():
    source = (
        "def activation_function(x):\n    if x.shape[0] > 0:\n        return torch.relu(x)\n"
        "    return activation_function(-x)\n"
    )
    for seed in range(6):
        proposal = SymbolicMutator().propose(Parent(source), [], random.Random(seed))
        assert_valid(proposal, "symbolic")
        tree = ast.parse(proposal.source)
        assert [s.name for s in tree.body] == ["base_activation", "activation_function"]
        assert "return base_activation(-x)" in proposal.source  # the recursion goes to the base
        assert "base_activation(" in ast.unparse(return_expr(proposal.source))


def test_parameter_name_is_kept():
    source = "def activation_function(inp):\n    return F.gelu(inp)\n"
    for op in OPERATORS:
        proposal = forced(op).propose(Parent(source), [], random.Random(1))
        assert_valid(proposal, "symbolic")
        assert ex.names_in(return_expr(proposal.source)) <= {"inp", "torch", "F"}


def test_parent_against_the_policy_is_replaced_by_relu():
    proposal = SymbolicMutator().propose(
        Parent("import os\ndef activation_function(x):\n    return x\n"), [], random.Random(0)
    )
    assert_valid(proposal, "symbolic")
    assert proposal.rationale.startswith("parent unusable (import)")


# ------------------------------------------------------------------------------------------------
# Reachability of the paper's forms
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_periodic_term_within_30_steps_from_relu(seed):
    rng, parent, found = random.Random(seed), Parent(RELU), False
    for _ in range(30):
        proposal = SymbolicMutator().propose(parent, [], rng)
        found = found or bool(re.search(r"torch\.(sin|cos)\(", proposal.source))
        parent = Parent(proposal.source)
    assert found


def test_greedy_search_approaches_gelu_sine():
    xs = torch.linspace(-6, 6, 241, dtype=torch.float64)
    target = F.gelu(xs, approximate="tanh") + 0.1 * torch.sin(xs)

    def distance(source: str) -> float:
        y = compile_candidate(source)(xs.float()).double()
        d = float((y - target).pow(2).mean().sqrt())
        return d if math.isfinite(d) else math.inf

    mutator, rng = SymbolicMutator(), random.Random(0)
    best, best_distance = RELU, distance(RELU)
    start_distance = best_distance
    for _ in range(120):
        child = mutator.propose(Parent(best), [], rng).source
        d = distance(child)
        if d <= best_distance:
            best, best_distance = child, d
    assert best_distance < 0.5 * start_distance, (best, best_distance, start_distance)


# ------------------------------------------------------------------------------------------------
# Expression helpers
# ------------------------------------------------------------------------------------------------


def expr(text: str) -> ast.expr:
    return ast.parse(text, mode="eval").body


@pytest.mark.parametrize(
    "before, after",
    [
        ("x * 1 + 0", "x"),
        ("1 * torch.tanh(x) - 0", "torch.tanh(x)"),
        ("--x", "x"),
        ("0.5 * 4 + x / 1", "2.0 + x"),
        ("x + -0.5 * torch.sin(x)", "x - 0.5 * torch.sin(x)"),
        ("x - -2 * x", "x + 2 * x"),
        ("2 * (3 * x)", "6 * x"),
        ("0.5 * (3 * x / (1 + x * x))", "1.5 * x / (1 + x * x)"),
        ("0.1 * (F.gelu(x) * torch.sigmoid(x))", "0.1 * F.gelu(x) * torch.sigmoid(x)"),
    ],
)
def test_cleanup(before, after):
    assert ast.unparse(ex.cleanup(expr(before))) == after


def test_round_constants_and_count_nodes():
    node = ex.round_constants(expr("0.123456789 * torch.tanh(1.5 * x) + 3"))
    assert ast.unparse(node) == "0.1235 * torch.tanh(1.5 * x) + 3"
    assert ex.count_nodes(expr("torch.tanh(1.5 * x)")) == 4
    assert ex.count_nodes(expr("-0.5 * x")) == 3


def test_constant_sites_skip_exponents_and_dims_and_protect_denominators():
    sites = ex.constant_sites(expr("x ** 2 + torch.sum(x, 1) + 0.3 * x / (1 + 0.5 * x * x) + torch.exp(-0.2 * x)"))
    assert sorted((s.value, s.protected) for s in sites) == [(-0.2, True), (0.3, False), (0.5, True), (1, True)]


def test_evaluate_refuses_what_it_does_not_model():
    env = {"x": torch.ones(3)}
    for text in ("open('f')", "x.numpy()", "torch.roll(x, 1)", "10 ** 10 ** 10", "(lambda: 1)()", "y"):
        with pytest.raises(ex.Unsupported):
            ex.evaluate(expr(text), env)
    assert torch.allclose(ex.evaluate(expr("F.relu(x) * 2 + math.pi - math.pi"), env), torch.full((3,), 2.0))


def test_screen_catches_what_the_probes_would():
    def screened(text: str, **kw):
        return ex.screen(ex.Evaluable("x", (), (), expr(text)), **kw)

    assert screened("F.gelu(x) + 0.1 * torch.sin(x)") is None
    assert screened("torch.exp(x)") == "non-finite values"
    assert screened("torch.relu(x) * 0 + 1") is not None
    assert screened("2 * x + 1", require_nonlinear=True) == "affine"
    reference = ex.values(ex.Evaluable("x", (), (), expr("torch.relu(x)")))
    assert screened("torch.relu(x) * 1.0", reference=reference) == "the same function as the parent"


def test_inspiration_with_exponential_inlining_is_skipped_quickly():
    body = "".join(f"    y{k + 1} = y{k} * y{k}\n" for k in range(40))
    inspiration = f"def activation_function(x):\n    y0 = torch.tanh(x)\n{body}    return y40\n"
    proposal = forced("crossover").propose(Parent(PAPER["gmtu"]), [Parent(inspiration)], random.Random(0))
    assert proposal.rationale.startswith("tune constant")  # no usable inspiration: the fallback


def test_cost_bound_is_an_upper_bound_of_the_measured_cost():
    from actmine.candidate.probes import measure_cost

    checked = 0
    for make, seed in ((RandomMutator, 0), (SymbolicMutator, 1)):
        mutator, rng, parent = make(), random.Random(seed), Parent(PAPER["gelu_sinc"])
        for _ in range(40):
            parent = Parent(mutator.propose(parent, [], rng).source)
            program = ex.evaluable_program(check_source(parent.source))
            bound = ex.cost_bound(program)
            if bound is None:
                continue
            cost = measure_cost(program, size=256)
            assert bound[0] >= cost.flops_per_element and bound[1] >= cost.saved_bytes_per_element, parent.source
            checked += 1
    assert checked >= 60
    assert ex.cost_bound(ex.Evaluable("x", (), (), expr("torch.cumsum(x, 0)"))) is None


def test_interpreter_matches_the_compiled_program_with_helpers_and_locals():
    source = (
        "SCALE = 1.702\n\ndef gate(t, s):\n    z = s * t\n    return torch.sigmoid(z)\n\n"
        "def activation_function(x):\n    g = gate(x, SCALE)\n    return x * g + 0.1 * x.clamp(min=0).square()\n"
    )
    program = ex.evaluable_program(check_source(source))
    assert program is not None
    assert torch.allclose(program(GRID), compile_candidate(source)(GRID))
    looping = "def activation_function(x):\n    for k in range(2):\n        x = torch.tanh(x)\n    return x\n"
    assert ex.evaluable_program(check_source(looping)) is None


def test_proposals_do_not_depend_on_the_mutators_history():
    """The caches (checked sources, parents' values) never change a proposal."""
    warm, rng, parent = SymbolicMutator(), random.Random(9), Parent(RELU)
    for _ in range(25):
        state = rng.getstate()
        proposal = warm.propose(parent, INSPIRATIONS[1:], rng)
        fresh_rng = random.Random()
        fresh_rng.setstate(state)
        assert SymbolicMutator().propose(parent, INSPIRATIONS[1:], fresh_rng) == proposal
        parent = Parent(proposal.source)
