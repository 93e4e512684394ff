"""The LLM mutator, driven through the real `openai` client against a scripted server on 127.0.0.1."""

import random
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings, strategies as st

import ast

from actmine.candidate.probes import PROBE_CODES, run_probes
from actmine.candidate.source import REASON_CODES, check_source, compile_candidate
from actmine.config import Config, ConfigError
from actmine.evolve.controller import Search
from actmine.evolve.database import ProgramDatabase
from actmine.evolve.mutators import Failure, LabContext, Parent, get_mutator
from actmine.evolve.mutators.feedback import FIXES, NOT_THE_ANSWER, fix_for
from actmine.evolve.mutators.llm import (
    LLMCall,
    LLMConfigError,
    LLMMutator,
    ModelChooser,
    ModelSpec,
    build_prompt,
    failure_items,
    load_prompts,
    parse_response,
)

from chat_server import ChatServer

GOOD = (
    "I add a small periodic term to GELU so that the networks keep some curvature outside the "
    "training range.\n\n```python\ndef activation_function(x):\n    return F.gelu(x) + 0.1 * torch.sin(x)\n```\n"
)
PARENT = Parent(
    source="def activation_function(x):\n    return F.gelu(x)\n",
    fitness=0.05,
    rationale="GELU",
    family_log_ratios={"polynomial": -0.1, "harmonic": 0.02},
    id=3,
)
INSPIRATION = Parent(
    source="def activation_function(x):\n    return x * torch.sigmoid(1.702 * x)\n",
    fitness=0.02,
    rationale="SiLU-like",
    family_log_ratios={"polynomial": -0.03},
    id=4,
)


def mutator(server: ChatServer, **options) -> LLMMutator:
    model = {"name": "scripted-model", "base_url": server.base_url, **options.pop("model", {})}
    options.setdefault("backoff_s", 0.01)
    return LLMMutator(models=[model], **options)


# ---- parsing -------------------------------------------------------------------------------


def test_parse_takes_the_last_block_that_defines_the_function():
    text = (
        "The parent was:\n```python\ndef activation_function(x):\n    return x\n```\n"
        "I make it smoother.\n```python\nimport torch\nimport math\nimport torch.nn.functional as F\n\n"
        "def activation_function(x):\n    return F.softplus(x) * math.pi\n```\nDone."
    )
    parsed = parse_response(text)
    assert parsed.source.strip() == "def activation_function(x):\n    return F.softplus(x) * math.pi"
    assert parsed.rationale.startswith("The parent was:")
    check_source(parsed.source)


def test_parse_drops_thinking_and_accepts_unfenced_code():
    text = (
        "<think>Maybe sin? ```python\ndef activation_function(x):\n    return x\n```</think>"
        "A gated tanh.\ndef helper(x):\n    return torch.tanh(x)\n\n"
        "def activation_function(x):\n    return x * helper(x)\nThat should extrapolate."
    )
    parsed = parse_response(text)
    assert parsed.source == (
        "def helper(x):\n    return torch.tanh(x)\n\ndef activation_function(x):\n    return x * helper(x)\n"
    )
    assert parsed.rationale == "A gated tanh."


@pytest.mark.parametrize(
    "text, error",
    [
        ("", "empty"),
        ("I would use GELU.", "no code block"),
        ("```python\ndef helper(x):\n    return x\n```", "no code block defines activation_function"),
    ],
)
def test_parse_reports_answers_without_a_program(text, error):
    parsed = parse_response(text)
    assert parsed.source is None and error in parsed.error


def test_only_preimported_modules_are_stripped():
    parsed = parse_response(
        "```python\nimport torch\nimport os\nfrom torch.nn import functional as F\n\n"
        "def activation_function(x):\n    return x\n```"
    )
    assert parsed.source == "import os\n\ndef activation_function(x):\n    return x\n"
    with pytest.raises(Exception, match="import"):
        check_source(parsed.source)  # the rest is left to the policy, which says why


# An answer written the way frontier models write code: typing import, annotations, a docstring, and
# a self-test under `if __name__ == "__main__":` that the policy would refuse as written.
BOILERPLATE = (
    "Here is a smoother gate <b>with</b> a bounded periodic term.\n\n"
    "```python\nfrom typing import Optional\n\nimport torch\n\n\n"
    "def activation_function(x: torch.Tensor, scale: Optional[float] = None) -> torch.Tensor:\n"
    '    """GELU plus a small periodic term."""\n'
    "    y: torch.Tensor = F.gelu(x) + 0.2 * torch.sin(x)\n    return y\n\n\n"
    'if __name__ == "__main__":\n    t = torch.linspace(-3, 3, 7)\n    print(activation_function(t))\n```\n'
    "It should extrapolate <script>alert(1)</script> better.\n"
)


def test_boilerplate_is_normalised_and_the_policy_accepts_it():
    parsed = parse_response(BOILERPLATE)
    check_source(parsed.source)  # as written, the policy refuses the import and the `if`
    tree = ast.parse(parsed.source)
    assert "typing" not in parsed.source and "__main__" not in parsed.source and "print" not in parsed.source
    assert not any(isinstance(n, (ast.Import, ast.ImportFrom, ast.If)) for n in tree.body)
    assert parsed.changes and all(isinstance(c, str) and c for c in parsed.changes)
    assert parsed.rationale.startswith("Here is a smoother gate")


def test_a_block_counts_when_its_normalised_form_defines_the_function():
    """The last block wins when, normalised, it defines the function at its top level; a later block
    that only uses the function (a usage example) does not count."""
    text = (
        "Parent:\n```python\ndef activation_function(x):\n    return x\n```\nMine:\n"
        "```python\nfrom typing import Optional\ndef activation_function(x: Optional[torch.Tensor]):\n"
        "    return torch.tanh(x) * x\n```\nUsage:\n```python\nprint(activation_function(torch.ones(3)))\n```"
    )
    parsed = parse_response(text)
    assert "torch.tanh(x) * x" in parsed.source and "typing" not in parsed.source
    check_source(parsed.source)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=400))
def test_parse_never_raises(text):
    parsed = parse_response(text)
    assert parsed.source is None or "activation_function" in parsed.source


# ---- prompts -------------------------------------------------------------------------------


def test_prompt_carries_scores_rules_inspirations_and_failures():
    templates = load_prompts()
    failures = [Failure("policy:import", "line 1: import of 'numpy' is not allowed")] * 3 + [
        Failure("probes:not_finite", "non-finite output at x=0")
    ]
    lab = LabContext(
        families=("feynman", "polynomial"), hidden=64, steps=50, max_flops_per_element=120, max_source_chars=2000
    )
    messages = build_prompt(templates, "mutate", PARENT, [INSPIRATION], failures, lab)
    system, user = messages[0]["content"], messages[1]["content"]
    assert "activation functions" in system
    assert PARENT.source.strip() in user and INSPIRATION.source.strip() in user
    assert "+0.050" in user and "polynomial -0.100" in user
    assert "feynman, polynomial" in user and "120" in user and "2000" in user
    assert "policy:import (3x)" in user and "probes:not_finite (1x)" in user
    assert "Do not import anything" in user and "Elementwise only" in user
    crossover = build_prompt(templates, "crossover", PARENT, [INSPIRATION], [], lab, other=INSPIRATION)[1]["content"]
    assert "Second parent" in crossover and "Recent refusals" not in crossover
    simplify = build_prompt(templates, "simplify", PARENT, [], [], lab)[1]["content"]
    assert "SIMPLER" in simplify


# ---- feedback after a refusal ---------------------------------------------------------------


def _written_failure_codes() -> set[str]:
    """Every failure code written as a literal anywhere in actmine: `evaluation.fail(stage, CODE, …)`,
    `failed_evaluation(lab, name, CODE, …)`, `ProbeFailure/WorkerLost/CandidateError(CODE, …)`,
    `{"code": CODE}` and the sandbox's `return CODE, message` (the `_death_reason` of a worker)."""
    codes = set()
    for path in (Path(__file__).parent.parent / "actmine").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            constant = None
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                position = {
                    "fail": 1,
                    "failed_evaluation": 2,
                    "ProbeFailure": 0,
                    "WorkerLost": 0,
                    "CandidateError": 0,
                }.get(name)
                if position is not None and len(node.args) > position:
                    constant = node.args[position]
            elif isinstance(node, ast.Dict):
                constant = next(
                    (v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant) and k.value == "code"),
                    None,
                )
            elif isinstance(node, ast.FunctionDef) and node.name == "_death_reason":
                codes |= {
                    r.value.elts[0].value
                    for r in ast.walk(node)
                    if isinstance(r, ast.Return)
                    and isinstance(r.value, ast.Tuple)
                    and isinstance(r.value.elts[0], ast.Constant)
                }
            if isinstance(constant, ast.Constant) and isinstance(constant.value, str):
                codes.add(constant.value)
    return codes


def test_every_reason_code_has_a_rule_and_a_corrected_example():
    written = _written_failure_codes()
    assert {
        "syntax_error",
        "non_finite",
        "screen_failed",
        "timeout",
        "cpu_limit",
        "no_code",
    } <= written  # the scan works
    probe_literals = {c for c in written if c in PROBE_CODES}
    assert probe_literals >= {"bad_shape", "batch_dependent", "over_flop_budget"}
    missing = (set(REASON_CODES) | set(PROBE_CODES) | written) - set(FIXES) - NOT_THE_ANSWER
    assert not missing, f"add a feedback.FIXES entry (rule, corrected example) for: {sorted(missing)}"
    assert all(fix.rule.strip() and "activation_function" in fix.example for fix in FIXES.values())


def test_every_corrected_example_passes_the_policy_and_the_probes():
    for example in {fix.example for fix in FIXES.values()}:
        check_source(example)
        probes = run_probes(compile_candidate(example))  # trusted text written by us: run here
        assert probes["pointwise"], example


def test_a_prompt_after_a_refusal_quotes_the_rule_and_the_example_for_its_code():
    lab = LabContext()
    for code in ("import", "forbidden_statement", "non_finite_gradient", "batch_dependent", "no_code"):
        failure = Failure(f"policy:{code}", f"line 3: something about {code}")
        user = build_prompt(load_prompts(), "mutate", PARENT, [], [failure], lab)[1]["content"]
        fix = fix_for(failure.reason)
        assert f"policy:{code} (1x): line 3: something about {code}" in user
        assert fix.rule in user and f"```python\n{fix.example.strip()}\n```" in user
        others = [f for c, f in FIXES.items() if f.rule != fix.rule]
        assert not any(f.rule in user for f in others)  # the rule of that code, not every rule


def test_failure_items_skip_service_failures_and_write_a_shared_example_once():
    failures = [
        Failure("mutator:llm_unavailable", "HTTP 500"),
        Failure("policy:too_long", "too long"),
        Failure("policy:missing_function", "no function"),
        Failure("mutator:budget", "spent"),
    ]
    text = failure_items(failures)
    assert "llm_unavailable" not in text and "budget" not in text
    assert FIXES["too_long"].example == FIXES["missing_function"].example
    assert text.count(FIXES["too_long"].example.strip()) == 1 and "as above" in text
    assert failure_items([Failure("mutator:mutator_error", "bug")]) == ""


def test_the_next_request_after_a_refusal_teaches_the_rule():
    """Through the real client: a proposal refused by the policy, observed by the mutator, shows up in
    the next call's prompt with its rule and corrected example."""
    with ChatServer([GOOD]) as server:
        m = mutator(server, operators={"mutate": 1})
        first = m.propose(PARENT, [], random.Random(0))
        assert "Recent refusals" not in server.requests[0]["body"]["messages"][1]["content"]
        m.observe(
            first,
            None,
            PARENT.fitness,
            Failure("policy:forbidden_statement", "line 9: a top-level `if` is not allowed"),
        )
        m.propose(PARENT, [], random.Random(1))
        prompt = server.requests[1]["body"]["messages"][1]["content"]
    assert "Recent refusals" in prompt and "policy:forbidden_statement (1x): line 9" in prompt
    assert FIXES["forbidden_statement"].rule in prompt and FIXES["forbidden_statement"].example.strip() in prompt


def test_prompts_dir_overrides_one_template(tmp_path):
    (tmp_path / "simplify.txt").write_text("Make it shorter: $parent_source")
    templates = load_prompts(tmp_path)
    messages = build_prompt(templates, "simplify", PARENT, [], [], LabContext())
    assert messages[1]["content"] == "Make it shorter: " + PARENT.source.strip()
    assert "Second parent" in templates["crossover"].template  # the others stay packaged


# ---- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "needs mutator.options.models"),
        ({"models": []}, "at least one model"),
        ({"models": [{"name": "m", "temperatur": 1}]}, "unknown key mutator.options.models[0].temperatur"),
        ({"models": [{"name": "m", "max_tokens": "many"}]}, "max_tokens must be an integer"),
        ({"models": [{"name": "m", "api_key_env": "sk-abc123"}]}, "NAME of an environment variable"),
        ({"models": ["m"], "selection": "greedy"}, "weights or bandit"),
        ({"models": ["m"], "operators": {"mutate": 1, "invert": 1}}, "operators"),
        ({"models": ["m"], "budget_usd": -1}, "budget_usd"),
    ],
)
def test_bad_options_name_the_key(options, message):
    with pytest.raises(LLMConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        LLMMutator(**options)


def test_missing_key_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("ACTMINE_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(LLMConfigError, match="ACTMINE_TEST_NO_SUCH_KEY is not set"):
        LLMMutator(models=[{"name": "m", "api_key_env": "ACTMINE_TEST_NO_SUCH_KEY"}])


# ---- calls through the real client -----------------------------------------------------------


def test_good_answer_becomes_a_recorded_proposal(monkeypatch):
    monkeypatch.setenv("ACTMINE_TEST_KEY", "sk-test-key-123")
    with ChatServer([GOOD], prompt_tokens=1000, completion_tokens=200) as server:
        m = mutator(
            server,
            model={
                "api_key_env": "ACTMINE_TEST_KEY",
                "price_in": 2.0,
                "price_out": 8.0,
                "temperature": 0.5,
                "max_tokens": 300,
            },
            operators={"mutate": 1},
        )
        proposal = m.propose(PARENT, [INSPIRATION], random.Random(0))
        request = server.requests[0]
    assert proposal.failure is None and proposal.model == "scripted-model" and proposal.mutator == "llm"
    assert proposal.source == "def activation_function(x):\n    return F.gelu(x) + 0.1 * torch.sin(x)\n"
    assert proposal.rationale.startswith("[mutate] I add a small periodic term")
    (call,) = proposal.calls
    assert (call.outcome, call.prompt_tokens, call.completion_tokens) == ("ok", 1000, 200)
    assert call.cost == pytest.approx((1000 * 2.0 + 200 * 8.0) / 1e6)
    assert m.usage()["usd"] == pytest.approx(call.cost) and m.usage()["tokens"] == 1200
    assert request["headers"]["authorization"] == "Bearer sk-test-key-123"
    assert request["body"]["model"] == "scripted-model"
    assert request["body"]["temperature"] == 0.5 and request["body"]["max_tokens"] == 300
    assert PARENT.source.strip() in request["body"]["messages"][1]["content"]


def test_a_normalised_answer_keeps_the_original_beside_it():
    with ChatServer([BOILERPLATE]) as server:
        proposal = mutator(server).propose(PARENT, [], random.Random(0))
    assert proposal.failure is None
    assert proposal.source == parse_response(BOILERPLATE).source and "typing" not in proposal.source
    check_source(proposal.source)
    assert proposal.original_answer == BOILERPLATE  # the whole answer, as it came
    assert proposal.normalisation_changes == parse_response(BOILERPLATE).changes != ()


def test_rate_limits_and_server_errors_are_retried_with_backoff():
    script = [{"status": 429, "retry_after": 0.2}, {"status": 503}, GOOD]
    with ChatServer(script) as server:
        m = mutator(server, backoff_s=0.05)
        started = time.monotonic()
        proposal = m.propose(PARENT, [], random.Random(1))
        elapsed = time.monotonic() - started
    assert [c.outcome for c in proposal.calls] == ["rate_limited", "server_error", "ok"]
    assert proposal.failure is None and len(server.requests) == 3
    assert elapsed >= 0.2 + 0.1  # Retry-After, then 2 × backoff
    assert "HTTP 429" in proposal.calls[0].error


def test_a_model_that_keeps_failing_gives_a_failed_proposal_not_an_exception():
    with ChatServer([{"status": 500}]) as server:
        m = mutator(server, max_retries=2)
        proposal = m.propose(PARENT, [], random.Random(2))
    assert proposal.failure["code"] == "llm_unavailable" and proposal.source == ""
    assert [c.outcome for c in proposal.calls] == ["server_error"] * 3


def test_slow_answers_time_out():
    with ChatServer([{"content": GOOD, "delay": 1.5}, GOOD]) as server:
        m = mutator(server, timeout_s=0.3, max_retries=1)
        proposal = m.propose(PARENT, [], random.Random(3))
    assert [c.outcome for c in proposal.calls] == ["timeout", "ok"] and proposal.failure is None


def test_a_wrong_key_disables_the_model():
    with ChatServer([{"status": 401, "message": "invalid api key"}]) as server:
        m = mutator(server)
        proposal = m.propose(PARENT, [], random.Random(4))
        assert len(server.requests) == 1  # not retried
    assert proposal.failure["code"] == "llm_unavailable"
    assert "invalid api key" in m.exhausted() and "scripted-model" in m.exhausted()


def test_no_code_keeps_the_raw_answer():
    with ChatServer(["I think GELU is already optimal."]) as server:
        proposal = mutator(server).propose(PARENT, [], random.Random(5))
    assert proposal.failure["code"] == "no_code" and proposal.source == "I think GELU is already optimal."
    assert proposal.original_answer == proposal.source and proposal.normalisation_changes == ()
    assert proposal.calls[0].outcome == "no_code"


def test_crossover_without_an_inspiration_falls_back_to_mutate():
    with ChatServer([GOOD]) as server:
        proposal = mutator(server, operators={"crossover": 1}).propose(PARENT, [], random.Random(6))
        assert "Second parent" not in server.requests[0]["body"]["messages"][1]["content"]
    assert proposal.rationale.startswith("[mutate]")


def test_answers_without_usage_are_counted_by_length():
    with ChatServer([{"content": GOOD, "usage": False}]) as server:
        proposal = mutator(server).propose(PARENT, [], random.Random(7))
    assert proposal.calls[0].completion_tokens > 0 and proposal.calls[0].prompt_tokens > 0


# ---- budget and the bandit -------------------------------------------------------------------

# (Spend's own arithmetic, boundaries and concurrency: tests/test_llm_spend.py)


def test_the_mutator_stops_calling_at_its_budget():
    # Each call reserves its worst case, the prompt estimate + a full 1000-token completion at $10/M
    # both ways, and really uses 100 + 100 tokens ($0.002). One operator: every prompt is the same.
    with ChatServer([GOOD], prompt_tokens=100, completion_tokens=100) as server:
        m = mutator(
            server,
            budget_usd=0.03,
            operators={"mutate": 1},
            model={"price_in": 10.0, "price_out": 10.0, "max_tokens": 1000},
        )
        proposals = [m.propose(PARENT, [], random.Random(i)) for i in range(15)]
    messages = server.requests[0]["body"]["messages"]
    assert all(r["body"]["messages"] == messages for r in server.requests)
    prompt_estimate = int(sum(len(message["content"]) for message in messages) / 3.0) + 16
    worst_case = (prompt_estimate * 10.0 + 1000 * 10.0) / 1e6
    # a call is made while what was spent + its worst case fits under $0.03
    expected, spent = 0, 0.0
    while spent + worst_case <= 0.03:
        expected, spent = expected + 1, spent + 0.002
    assert 2 <= expected < 15  # the numbers above: the budget binds within this test
    made = [p for p in proposals if p.failure is None]
    assert len(made) == expected and len(server.requests) == expected
    assert all(p.failure["code"] == "budget" for p in proposals[expected:])
    assert m.usage()["usd"] == pytest.approx(0.002 * expected)
    assert (
        m.exhausted()
        == m.spend.exhausted
        == (
            f"LLM budget reached: ${0.002 * expected:.4f} spent of $0.03 "
            f"(the next call could cost up to ${worst_case:.4f})"
        )
    )


def test_bandit_favours_improvement_per_unit_cost():
    cheap, dear = ModelSpec("cheap", price_in=1, price_out=1), ModelSpec("dear", price_in=10, price_out=10)
    chooser = ModelChooser([cheap, dear], "bandit", exploration=0.2, min_trials=2)
    for _ in range(20):
        chooser.record_call(LLMCall("cheap", 1000, 500, cost=cheap.cost(1000, 500)))
        chooser.record_call(LLMCall("dear", 1000, 500, cost=dear.cost(1000, 500)))
        chooser.record_child("cheap", 0.2, 0.1)  # improves by 0.1 at 1/10 the price
        chooser.record_child("dear", 0.35, 0.1)  # improves by 0.25
    values = chooser.values()
    assert values["cheap"] == pytest.approx(0.1 / cheap.cost(1000, 500))
    assert values["cheap"] > values["dear"]
    picks = [chooser.choose(random.Random(i)).key for i in range(200)]
    assert picks.count("cheap") > 150
    # refused or worse children earn nothing
    chooser.record_child("dear", None, 0.1)
    chooser.record_child("dear", 0.0, 0.1)
    assert chooser.stats["dear"].reward == pytest.approx(20 * 0.25)


def test_weights_choose_in_proportion():
    chooser = ModelChooser([ModelSpec("a", weight=3), ModelSpec("b", weight=1)], "weights")
    picks = [chooser.choose(random.Random(i)).key for i in range(2000)]
    assert 0.70 < picks.count("a") / 2000 < 0.80


def test_get_mutator_builds_the_llm_mutator():
    m = get_mutator("llm", models=[{"name": "x", "base_url": "http://127.0.0.1:9/v1"}], concurrency=3)
    assert isinstance(m, LLMMutator) and m.concurrency == 3


# ---- a search with the LLM mutator -------------------------------------------------------------

SUITE = {
    "name": "tiny",
    "seeds": [0],
    "tasks": [{"family": "polynomial", "dim": 1, "seed": 0}, {"family": "harmonic", "seed": 1}],
}
HOSTILE = (
    "Let me look around.\n```python\nimport os\ndef activation_function(x):\n    os.system('id')\n    return x\n```"
)
BROKEN = "```python\ndef activation_function(x):\n    return torch.relu(x) +\n```"
DIVERGENT = "Blow up.\n```python\ndef activation_function(x):\n    return torch.exp(x * 50.0) / 0.0\n```"


def search_config(tmp_path: Path, base_url: str, budget: int, **llm_options) -> Config:
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(SUITE))
    options = {
        "models": [
            {
                "name": "scripted-model",
                "base_url": base_url,
                "api_key_env": "ACTMINE_TEST_KEY",
                "price_in": 3.0,
                "price_out": 15.0,
                "max_tokens": 400,
            }
        ],
        "concurrency": 2,
        "backoff_s": 0.01,
        **llm_options,
    }
    return Config.from_dict(
        {
            "search": {"budget": budget, "time_limit": 0, "islands": 1, "heldout_top": 1, "initial_programs": ["gelu"]},
            "mutator": {"kind": "llm", "options": options},
            "executor": {"workers": 2},
            "lab": {
                "suite": str(tmp_path / "tiny.yaml"),
                "heldout_suite": str(tmp_path / "tiny.yaml"),
                "training_seeds": 1,
                "steps": 10,
            },
            "sandbox": {"timeout_s": 60, "cpu_s": 60, "memory_mb": 3072},
        }
    )


def run_records(run_dir: Path):
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        run = db.latest_run()
        return db.programs(run["id"]), db.llm_calls(run["id"])


def test_search_with_scripted_llm_records_everything_and_leaks_no_key(tmp_path, monkeypatch):
    secret = "sk-live-SECRET-0123456789abcdef"
    monkeypatch.setenv("ACTMINE_TEST_KEY", secret)
    script = [GOOD, HOSTILE, "No idea, sorry.", {"status": 429, "retry_after": 0}, BROKEN, DIVERGENT, BOILERPLATE]
    with ChatServer(script) as server:
        summary = Search(search_config(tmp_path, server.base_url, budget=8), tmp_path / "run", live=False).run()
        requests = len(server.requests)
    programs, calls = run_records(tmp_path / "run")
    assert summary["evaluated"] == 8 and len(programs) == 8
    assert len(calls) == requests  # every HTTP attempt is in the database
    assert {c["outcome"] for c in calls} >= {"ok", "no_code", "rate_limited"}
    llm = [p for p in programs if p.mutator == "llm"]
    by_code = {(p.failure_stage, p.failure_code) for p in llm if p.status == "failed"}
    assert ("policy", "import") in by_code  # the hostile program was refused before running
    assert ("mutator", "no_code") in by_code
    assert ("policy", "syntax_error") in by_code
    good = [p for p in llm if p.status == "ok"]
    assert good and all(p.model == "scripted-model" and p.rationale.startswith("[") for p in good)
    no_code = next(p for p in llm if p.failure_code == "no_code")
    assert no_code.source == "No idea, sorry."  # the raw answer is kept
    # boilerplate became a candidate: its normalised program is stored, the whole answer beside it
    boiler = [p for p in llm if p.original_answer == BOILERPLATE]
    assert boiler and boiler[0].status == "ok" and "typing" not in boiler[0].source
    assert "__main__" not in boiler[0].source and boiler[0].normalisation_changes
    assert all(p.status == "duplicate" for p in boiler[1:])  # the repeats: same normalised program
    assert all(p.original_answer is None for p in programs if p.mutator == "seed")
    # ... and the report shows both under the program, escaped
    report = (tmp_path / "run" / "report.html").read_text()
    section = report[report.index(f"id='program-{boiler[0].id}'") :]
    section = section[: section.index("</div>")]
    import html

    assert f"<pre>{html.escape(BOILERPLATE)}</pre></details>" in section
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section and "<script>" not in report
    assert all(f"<li>{html.escape(c)}</li>" in section for c in boiler[0].normalisation_changes)
    assert summary["llm"]["usd"] == pytest.approx(sum(c["cost"] for c in calls))
    linked = {c["program_id"] for c in calls if c["program_id"] is not None}
    assert linked <= {p.id for p in llm}
    # the key is in no file the run wrote
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
            assert b"sk-live" not in path.read_bytes(), path


def test_budget_cap_stops_the_search_and_survives_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTMINE_TEST_KEY", "sk-test")
    # a call reserves (≈ prompt/3 chars + 400) tokens at $3/$15 per M; this cap allows only a few calls
    with ChatServer([GOOD], prompt_tokens=1500, completion_tokens=300) as server:
        config = search_config(tmp_path, server.base_url, budget=40, budget_usd=0.05)
        summary = Search(config, tmp_path / "run", live=False).run()
        first_requests = len(server.requests)
        programs, calls = run_records(tmp_path / "run")
        assert "LLM budget reached" in summary["stopped"]
        assert summary["evaluated"] < 40 and not summary["interrupted"]
        spent = sum(c["cost"] for c in calls)
        assert 0 < spent <= 0.05 and len(calls) == first_requests
        # resume with a bigger evaluation budget: the spend is remembered, so no new call is made
        again = Search(config.with_overrides({"search.budget": 60}), tmp_path / "run", live=False).run()
        assert len(server.requests) == first_requests and "LLM budget reached" in again["stopped"]
        # raising the money budget on resume is allowed, and calls resume
        raised = config.to_dict()
        raised["mutator"]["options"]["budget_usd"] = 0.1
        raised["search"]["budget"] = 60
        more = Search(Config.from_dict(raised), tmp_path / "run", live=False).run()
        assert len(server.requests) > first_requests and "LLM budget reached" in more["stopped"]
    _, calls = run_records(tmp_path / "run")
    assert sum(c["cost"] for c in calls) <= 0.1


def test_an_answer_with_a_lone_surrogate_is_stored_not_fatal(tmp_path, monkeypatch):
    # JSON may carry "\\ud800", which no UTF-8 encoder accepts (SQLite's included): it aborted the search
    monkeypatch.setenv("ACTMINE_TEST_KEY", "sk-test")
    odd = "Better \ud800 idea.\n```python\ndef activation_function(x):\n    return F.gelu(x) * 1.01  # \udfff\n```\n"
    with ChatServer([odd]) as server:
        summary = Search(search_config(tmp_path, server.base_url, budget=3), tmp_path / "run", live=False).run()
    programs, calls = run_records(tmp_path / "run")
    assert summary["evaluated"] == 3 and {c["outcome"] for c in calls} == {"ok"}
    llm = [p for p in programs if p.mutator == "llm"]
    assert llm[0].status == "ok" and "\ufffd" in llm[0].rationale and "\ufffd" in llm[0].original_answer
    assert "\ud800" not in llm[0].original_answer


def test_negative_or_odd_usage_never_refunds_the_budget():
    answers = [{"content": GOOD}] * 4
    with ChatServer(answers, prompt_tokens=-10_000_000, completion_tokens=50) as server:
        m = mutator(server, model={"price_in": 3.0, "price_out": 15.0}, budget_usd=1.0)
        proposal = m.propose(PARENT, [], random.Random(0))
    (call,) = proposal.calls
    assert call.prompt_tokens == 0 and call.cost == pytest.approx(50 * 15.0 / 1e6)
    assert m.usage()["usd"] == pytest.approx(call.cost) and m.usage()["tokens"] == 50


def test_an_unfenced_answer_is_parsed_in_bounded_work(monkeypatch):
    """Without fences the parser trims prose from both ends of the block; an answer of n odd lines has
    n² trimmings, each a parse (n = 400: 9.5 s before the bound, 20 KB: many minutes)."""
    import actmine.evolve.mutators.llm_answers as answers

    parses = []
    real = answers._parses
    monkeypatch.setattr(answers, "_parses", lambda code: parses.append(1) or real(code))
    n = 400
    hostile = "Here is...\n" + "a = 1 +\n" * n + "def activation_function(x):\n" + "    )\n" * n
    assert parse_response(hostile).source is None
    assert 0 < len(parses) <= answers.MAX_UNFENCED_ATTEMPTS
    assert len(answers.answer_text("x" * (answers.MAX_ANSWER_CHARS + 10))) == answers.MAX_ANSWER_CHARS


def test_changing_the_models_on_resume_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTMINE_TEST_KEY", "sk-test")
    config = search_config(tmp_path, "http://127.0.0.1:9/v1", budget=3)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with ProgramDatabase(run_dir / "programs.sqlite") as db:  # a run made with `config`
        db.create_run(config.to_dict(), 0, {})
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    changed = config.to_dict()
    changed["mutator"]["options"]["models"][0]["name"] = "other-model"
    with pytest.raises(ConfigError, match="mutator.options.models"):
        Search(Config.from_dict(changed), run_dir, live=False).run()
    # the budgets, concurrency and timeouts may change
    raised = config.to_dict()
    raised["mutator"]["options"].update(budget_usd=9.0, concurrency=8, timeout_s=30)
    assert Config.from_dict(raised).resume_conflicts(config) == []


@pytest.mark.parametrize("name", ["openai.yaml", "ensemble.yaml", "local-llm.yaml"])
def test_example_configs_load(name, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-example")
    monkeypatch.setenv("GEMINI_API_KEY", "example")
    config = Config.load(Path(__file__).parent.parent / "examples" / name)
    assert config.mutator.kind == "llm"
    m = get_mutator("llm", **config.mutator.options)
    assert m.models and all(model.api_key_env in (None, "OPENAI_API_KEY", "GEMINI_API_KEY") for model in m.models)
