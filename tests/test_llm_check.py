"""`actmine llm check`: one real request per model, through the real `openai` client, against the scripted
chat server on 127.0.0.1 (tests/chat_server.py); nothing is mocked."""

import socket

import pytest
import yaml
from hypothesis import given, strategies as st

from actmine.candidate.source import CandidateError, check_source
from actmine.cli import main
from actmine.evolve.mutators.llm_check import EXIT_UNAVAILABLE, proposals_within_budget
from actmine.evolve.mutators.spend import Reservation

from chat_server import ChatServer

KEY_ENV = "ACTMINE_CHECK_TEST_KEY"
KEY = "sk-check-secret-4242"
GOOD = (
    "A GELU with a small periodic term.\n\n```python\ndef activation_function(x):\n"
    "    return F.gelu(x) + 0.1 * torch.sin(x)\n```\n"
)
HOSTILE_PROGRAM = "def activation_function(x):\n    return open('/etc/passwd')\n"
# 100 prompt and 50 completion tokens per answer (ChatServer's usage block), at $2 / $8 per million
CALL_USD = (100 * 2.0 + 50 * 8.0) / 1e6


@pytest.fixture()
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def write_config(tmp_path, models, kind="llm", **options):
    """A search config whose llm mutator has `models`; fast failures (no retry, short timeout)."""
    options = {"models": models, "timeout_s": 2, **options}
    config = {
        "search": {"budget": 12, "initial_programs": ["relu", "gelu"]},
        "mutator": {"kind": kind, "options": options},
    }
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return str(path)


def model(server_or_url, **fields):
    url = server_or_url if isinstance(server_or_url, str) else server_or_url.base_url
    return {
        "name": "scripted-model",
        "base_url": url,
        "api_key_env": KEY_ENV,
        "price_in": 2.0,
        "price_out": 8.0,
        "max_tokens": 1000,
        **fields,
    }


def check(capsys, path):
    code = main(["llm", "check", "--config", path])
    out, err = capsys.readouterr()
    return code, out, err


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- answers -------------------------------------------------------------------------------


def test_a_working_model_shows_its_program_verdict_tokens_and_costs(tmp_path, capsys, key):
    with ChatServer([GOOD]) as server:
        code, out, _ = check(capsys, write_config(tmp_path, [model(server)], budget_usd=1.0))
    assert code == 0
    assert len(server.requests) == 1  # one request, nothing more
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"
    assert server.requests[0]["body"]["model"] == "scripted-model"
    assert "OK: answered with a program the policy accepts" in out
    assert "        return F.gelu(x) + 0.1 * torch.sin(x)" in out
    assert "accepted by the static policy" in out and "A GELU with a small periodic term." in out
    assert "tokens: 100 in, 50 out; this call $0.000600" in out
    assert f"one proposal: about ${CALL_USD:.6f}" in out
    # 12 proposals minus 2 seeds, each at the call's cost; $1 covers them all
    assert (
        f"the run's 10 LLM proposals (search.budget minus the seeds), all by this model: about "
        f"${10 * CALL_USD:.6f}; budget_usd $1 lets all of them through" in out
    )
    assert KEY not in out


def test_a_budget_that_stops_the_run_says_after_how_many_proposals(tmp_path, capsys, key):
    # price_in 0: a proposal reserves max_tokens x $8/M = $0.008 and spends 50 x $8/M = $0.0004, so
    # $0.0101 lets through the calls with k x 0.0004 + 0.008 <= 0.0101: k = 0..5
    with ChatServer([GOOD]) as server:
        path = write_config(tmp_path, [model(server, price_in=0.0)], budget_usd=0.0101)
        code, out, _ = check(capsys, path)
    assert code == 0
    assert "reserves up to $0.008000" in out
    assert "budget_usd $0.0101 stops it after about 6 proposals" in out


def test_a_refused_program_exits_1_with_the_policys_reason(tmp_path, capsys, key):
    with pytest.raises(CandidateError) as refusal:
        check_source(HOSTILE_PROGRAM)
    with ChatServer([f"Read a file.\n```python\n{HOSTILE_PROGRAM}```"]) as server:
        code, out, _ = check(capsys, write_config(tmp_path, [model(server)]))
    assert code == 1
    assert "REFUSED: the policy refuses the program" in out
    assert f"refused [{refusal.value.code}]" in out
    assert "return open('/etc/passwd')" in out
    assert "tokens: 100 in, 50 out" in out


def test_an_answer_without_a_program_exits_1(tmp_path, capsys, key):
    with ChatServer(["I would use GELU, it is smooth."]) as server:
        code, out, _ = check(capsys, write_config(tmp_path, [model(server)]))
    assert code == 1
    assert "NO PROGRAM in the answer" in out and "no code block" in out
    assert "I would use GELU, it is smooth." in out


def test_hostile_model_text_is_neutralised(tmp_path, capsys, key):
    answer = (
        "\x1b]0;owned\x07Fine \x1b[2J\x1b[31mred\u202e text\r\n"
        "```python\ndef activation_function(x):\n    return x  # \x1b[8mhidden\x9b1m\n```"
    )
    with ChatServer([answer]) as server:
        code, out, _ = check(capsys, write_config(tmp_path, [model(server)]))
    assert code in (0, 1)  # whatever the policy says: the text is printed either way
    for raw in ("\x1b", "\x07", "\u202e", "\r", "\x9b"):
        assert raw not in out
    assert "\\x1b[31mred\\u202e text" in out and "\\x1b[8mhidden\\x9b1m" in out


# ---- what is wrong -------------------------------------------------------------------------


def test_a_wrong_key_is_named_and_never_printed(tmp_path, capsys, key):
    # the server echoes the key it was given: the check blanks it out
    script = [{"status": 401, "message": f"Incorrect API key provided: {KEY}"}]
    with ChatServer(script) as server:
        code, out, _ = check(capsys, write_config(tmp_path, [model(server)]))
    assert code == EXIT_UNAVAILABLE
    assert "KEY REFUSED" in out and f"the key in {KEY_ENV}" in out and "HTTP 401" in out
    assert KEY not in out and "***" in out


@pytest.mark.parametrize(
    "status, message",
    [(404, "The model `nope-1` does not exist"), (400, "model 'nope-1' not found")],
    ids=["http-404", "http-400"],
)
def test_a_wrong_model_name_is_named(tmp_path, capsys, key, status, message):
    with ChatServer([{"status": status, "message": message}]) as server:
        code, out, _ = check(capsys, write_config(tmp_path, [model(server, name="nope-1")]))
    assert code == EXIT_UNAVAILABLE
    assert "UNKNOWN MODEL" in out and "model 'nope-1' is not known" in out
    assert "mutator.options.models[0].name" in out


def test_an_unreachable_url_is_named(tmp_path, capsys, key):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    code, out, _ = check(capsys, write_config(tmp_path, [model(url)]))
    assert code == EXIT_UNAVAILABLE
    assert "UNREACHABLE URL" in out and f"cannot connect to {url}" in out
    assert "mutator.options.models[0].base_url" in out


def test_a_slow_model_times_out(tmp_path, capsys, key):
    with ChatServer([{"content": GOOD, "delay": 1.0}]) as server:
        code, out, _ = check(capsys, write_config(tmp_path, [model(server)], timeout_s=0.2))
    assert code == EXIT_UNAVAILABLE
    assert "TIMEOUT" in out and "no answer within 0.2 s" in out


def test_a_missing_key_variable_is_named_and_nothing_is_sent(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with ChatServer([GOOD]) as server:
        code, out, _ = check(capsys, write_config(tmp_path, [model(server)]))
    assert code == EXIT_UNAVAILABLE
    assert "NO KEY" in out and f"environment variable {KEY_ENV} is not set: export {KEY_ENV}=" in out
    assert server.requests == []


def test_every_model_is_checked_and_the_worst_decides(tmp_path, capsys, key):
    with ChatServer([GOOD]) as good, ChatServer([{"status": 401}]) as bad:
        path = write_config(tmp_path, [model(good, label="good"), model(bad, label="bad")])
        code, out, _ = check(capsys, path)
    assert code == EXIT_UNAVAILABLE
    assert out.index("model good (") < out.index("OK: answered") < out.index("model bad (") < out.index("KEY REFUSED")
    assert len(good.requests) == 1 and len(bad.requests) == 1


# ---- configuration errors: exit 2, nothing sent ----------------------------------------------


def test_a_config_without_an_llm_mutator_exits_2(tmp_path, capsys):
    path = tmp_path / "symbolic.yaml"
    path.write_text("mutator: {kind: symbolic}\n", encoding="utf-8")
    code, out, err = check(capsys, str(path))
    assert code == 2 and out == ""
    assert "no llm mutator to check" in err and "mutator.kind: llm" in err


@pytest.mark.parametrize(
    "options, message",
    [
        ({"models": []}, "must list at least one model"),
        ({"models": [{"name": "m"}], "selection": "best"}, "selection must be weights or bandit"),
        ({"models": [{"name": "m"}], "colour": "blue"}, "colour"),
    ],
    ids=["no-models", "bad-selection", "unknown-option"],
)
def test_bad_llm_options_exit_2(tmp_path, capsys, options, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"mutator": {"kind": "llm", "options": options}}), encoding="utf-8")
    code, out, err = check(capsys, str(path))
    assert code == 2 and out == "" and message in err


def test_a_missing_file_exits_2(tmp_path, capsys):
    code, _, err = check(capsys, str(tmp_path / "nope.yaml"))
    assert code == 2 and "does not exist" in err


# ---- the budget arithmetic is the run's own Spend ------------------------------------------


def test_proposals_within_budget_replays_spend():
    # reserve $0.5, spend $0.125 each: k x 0.125 + 0.5 <= 1.0 for k = 0..4
    assert proposals_within_budget(100, Reservation(0.5, 10), 0.125, 2, 1.0, None) == 5
    assert proposals_within_budget(3, Reservation(0.5, 10), 0.125, 2, 1.0, None) == 3
    assert proposals_within_budget(100, Reservation(0.5, 10), 0.125, 2, None, 14) == 3  # tokens: k x 2 + 10 <= 14
    assert proposals_within_budget(7, Reservation(0.5, 10), 0.125, 2, None, None) == 7


@given(proposals=st.integers(0, 60), call=st.integers(0, 8), reserve=st.integers(0, 40), budget=st.integers(0, 200))
def test_proposals_within_budget_matches_the_closed_form(proposals, call, reserve, budget):
    """Eighths are exact in binary: the replayed Spend must agree with k x call + reserve <= budget."""
    fits = 0 if reserve > budget else (proposals if call == 0 else (budget - reserve) // call + 1)
    assert proposals_within_budget(proposals, Reservation(reserve / 8, 0), call / 8, 0, budget / 8, None) == min(
        proposals, fits
    )
