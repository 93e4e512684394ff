"""The LLM mutator's HTTP client against endpoints that misbehave (real loopback servers, the real
`openai` client): each call ends by its deadline whatever the endpoint sends, a stopping search
ends calls and backoffs at once, and an answer that is compressed, huge, not a chat completion or a
redirect is a recorded failure, never a hang, a crash or a key sent elsewhere."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import threading
import time

import pytest
from chat_server import ChatServer
from test_llm_mutator import GOOD, PARENT, mutator

from actmine.evolve.mutators import llm_http
from actmine.evolve.mutators.llm_check import diagnose


def timed_proposal(m, seed: int = 0):
    started = time.monotonic()
    proposal = m.propose(PARENT, [], random.Random(seed))
    return proposal, time.monotonic() - started


@pytest.mark.parametrize("slow", [{"content": GOOD, "drip": 0.05}, {"drip_headers": 0.05}], ids=["body", "headers"])
def test_an_endpoint_that_drips_is_cut_at_the_overall_timeout(slow):
    # every byte comes well within the per-read timeout, so httpx alone would wait ~20 s (or forever)
    with ChatServer([slow, GOOD]) as server:
        proposal, elapsed = timed_proposal(mutator(server, timeout_s=1.0, max_retries=1))
    assert [c.outcome for c in proposal.calls] == ["timeout", "ok"] and proposal.failure is None
    assert proposal.calls[0].latency_s < 1.0 + 2 * llm_http.POLL_S
    assert elapsed < 5


def test_stop_ends_a_call_in_flight_and_the_backoff():
    with ChatServer([{"content": GOOD, "delay": 30}]) as server:
        m = mutator(server, timeout_s=60)
        threading.Timer(0.5, m.stop).start()
        proposal, elapsed = timed_proposal(m)
    assert elapsed < 0.5 + 3 * llm_http.POLL_S + 1
    assert proposal.failure["code"] == "stopped" and [c.outcome for c in proposal.calls] == ["cancelled"]
    with ChatServer([{"status": 503}]) as server:
        m = mutator(server, backoff_s=30, max_retries=3)
        threading.Timer(0.5, m.stop).start()
        proposal, elapsed = timed_proposal(m)
        assert len(server.requests) == 1
    assert elapsed < 2 and proposal.failure["code"] == "stopped"
    assert [c.outcome for c in proposal.calls] == ["server_error"]


def test_a_compressed_answer_is_refused_before_it_is_inflated():
    body = gzip.compress(json.dumps({"id": "x", "pad": " " * 10**6}).encode())
    with ChatServer([{"raw": body, "headers": {"Content-Encoding": "gzip"}}, GOOD]) as server:
        proposal, _ = timed_proposal(mutator(server, max_retries=1))
        asked = server.requests[0]["headers"].get("accept-encoding")
    assert asked == "identity"
    first, second = proposal.calls
    # the server answered, wrongly: a server error (retried), not "cannot connect"
    assert first.outcome == "server_error" and "compressed it (gzip)" in first.error
    assert first.error.startswith(llm_http.REFUSED_ANSWER)
    assert second.outcome == "ok" and proposal.failure is None
    status, message = diagnose(first, mutator(server).models[0], 0, 10)
    assert status == "server_error" and "cannot connect" not in message and "Accept-Encoding: identity" in message


def test_an_answer_past_the_byte_cap_is_cut(monkeypatch):
    monkeypatch.setattr(llm_http, "MAX_ANSWER_BYTES", 20_000)
    with ChatServer(["x" * 50_000, GOOD]) as server:
        proposal, _ = timed_proposal(mutator(server, max_retries=1))
    first, second = proposal.calls
    assert (
        first.outcome == "server_error"
        and first.error == f"{llm_http.REFUSED_ANSWER}: the endpoint sent more than 20000 bytes"
    )
    assert second.outcome == "ok"
    status, message = diagnose(first, mutator(server).models[0], 0, 10)
    assert status == "server_error" and "max_tokens" in message and "try again later" not in message


@pytest.mark.parametrize(
    "raw, content_type",
    [
        (b"<html><body>Gateway login</body></html>", "text/html"),
        (b"", "text/html"),
        (b"", "application/json"),
        (b"ok", "text/plain"),
        (b"{}", "application/json"),
        (b'{"choices": "none"}', "application/json"),
        (b"[1, 2]", "application/json"),
    ],
)
def test_a_200_that_is_no_chat_completion_is_a_server_error_and_retried(raw, content_type):
    with ChatServer([{"raw": raw, "headers": {"Content-Type": content_type}}, GOOD]) as server:
        proposal, _ = timed_proposal(mutator(server, max_retries=1))
    first, second = proposal.calls
    assert first.outcome == "server_error" and first.error.startswith("HTTP 200 without a chat completion")
    assert second.outcome == "ok" and proposal.failure is None


def test_a_redirect_is_not_followed_and_says_where_it_points(monkeypatch):
    monkeypatch.setenv("ACTMINE_TEST_KEY", "sk-must-not-travel")
    with ChatServer([GOOD]) as elsewhere:
        target = elsewhere.base_url + "/chat/completions"
        with ChatServer([{"raw": b"", "status": 307, "headers": {"Location": target}}]) as server:
            m = mutator(server, model={"api_key_env": "ACTMINE_TEST_KEY"})
            proposal, _ = timed_proposal(m)
        assert elsewhere.requests == []  # the key went nowhere else
    (call,) = proposal.calls
    assert call.outcome == "client_error" and call.error.startswith("HTTP 307") and target in call.error
    status, message = diagnose(call, m.models[0], 0, 10)
    assert status == "client_error" and "redirects elsewhere" in message and "base_url" in message


def test_limits_belong_to_the_thread_that_set_them():
    cancelled = threading.Event()
    seen = []
    with llm_http.call_limits(5, cancelled) as outer:
        other = threading.Thread(target=lambda: seen.append(llm_http._limits()))
        other.start()
        other.join()
        with llm_http.call_limits(1, cancelled) as inner:
            assert llm_http._limits() is inner
        assert llm_http._limits() is outer
    assert seen == [None] and llm_http._limits() is None
    cancelled.set()
    with pytest.raises(llm_http.httpcore.ReadError, match="stopping"):
        outer.remaining("reading")


def test_ctrl_c_does_not_wait_for_a_slow_model_and_the_resume_is_gap_free(tmp_path, monkeypatch):
    from test_llm_mutator import run_records, search_config

    from actmine.evolve.controller import Search

    monkeypatch.setenv("ACTMINE_TEST_KEY", "sk-test")
    stopped_at = []

    def press_ctrl_c_once_the_model_is_asked(server: ChatServer) -> None:
        while not server.requests:  # the model holds the call for 120 s: the run is still in its loop
            time.sleep(0.05)
        stopped_at.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)  # the search's own handler takes it

    slow = {"content": GOOD, "delay": 120}
    with ChatServer([slow, slow, GOOD]) as server:  # the concurrency is 2: both first calls are slow
        config = search_config(tmp_path, server.base_url, budget=4)
        threading.Thread(target=press_ctrl_c_once_the_model_is_asked, args=(server,), daemon=True).start()
        summary = Search(config, tmp_path / "run", live=False).run()
        ended_at = time.monotonic()
        programs, calls = run_records(tmp_path / "run")
        assert summary["interrupted"] and ended_at - stopped_at[0] < 30  # not the model's 120 s
        assert [p.mutator for p in programs] == ["seed"]  # stopped proposals are no programs...
        assert calls and {c["outcome"] for c in calls} == {"cancelled"}  # ...but their calls are kept
        Search(config, tmp_path / "run", live=False).run()
    programs, _ = run_records(tmp_path / "run")
    assert sorted(p.proposal_index for p in programs) == [0, 1, 2, 3]
