"""`actmine serve`: the live viewer against runs built directly in a database (no search), served
by a real server on 127.0.0.1 in a thread, read over real HTTP and in headless chromium."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actmine.cli import main
from actmine.evolve.database import ProgramDatabase, ProgramRecord
from actmine.evolve.runlock import RunLock
from actmine.evolve.selection import cell_of
from actmine.serve import ServeError, check_host, create_app, make_server
from actmine.serve import pages
from actmine.serve.app import SECURITY_HEADERS
from test_report import chromium, console_problems

HOSTILE = "</script><script>alert(1)</script>"
ESCAPED = "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
HOSTILE_MODEL = "<img src=x onerror=alert(2)>"
PNG = b"\x89PNG\r\n\x1a\n"
NEEDS_CHROMIUM = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)"
)


# ---- runs built by hand -----------------------------------------------------------------------


def src(body: str, comment: str = "") -> str:
    return f"def activation_function(x):\n    return {body}\n" + (f"# {comment}\n" if comment else "")


def relu_curve() -> dict:
    xs = [x / 4 for x in range(-24, 25)]
    return {"x": xs, "y": [max(0.0, x) for x in xs], "dy": [1.0 if x > 0 else 0.0 for x in xs]}


DESCRIPTORS = {"growth_pos": 1.0, "growth_neg": 0.0, "sign_changes": 0, "bounded": False}


def scored(
    run_id, index, body, fitness, *, island=0, parents=(), comment="", descriptors=DESCRIPTORS, flops=1.0, **extra
) -> ProgramRecord:
    """An ok, settled program with probes, a recorded curve and its MAP-Elites cell."""
    probes = {"pointwise": True, "flops_per_element": flops, "fingerprint": f"fp{index}", "curve": relu_curve()}
    return ProgramRecord(
        run_id=run_id,
        proposal_index=index,
        source=src(body, comment),
        parent_ids=list(parents),
        island=island,
        fitness=fitness,
        fitness_se=0.05,
        score=fitness - 0.05,
        rounds=1,
        family_log_ratios={"polynomial": -fitness, "harmonic": -fitness / 2},
        tasks=[{"name": "poly-0", "family": "polynomial", "ood_error": 0.1, "id_error": 0.01, "log_ratio": -fitness}],
        descriptors=dict(descriptors),
        probes=probes,
        cell=cell_of(descriptors, probes),
        **extra,
    )


def make_llm_run(base: Path) -> tuple[Path, dict[str, int]]:
    """A run still going (status running) of an LLM search with caps: two islands, a seed on each,
    an LLM child with hostile rationale, model, answer and normalisation note, its child whose
    source carries hostile text, a failed and a duplicate proposal, two rounds, a validation."""
    run_dir = base / "llm-run"
    run_dir.mkdir()
    config = {
        "search": {"budget": 20, "islands": 2},
        "mutator": {"kind": "llm", "options": {"budget_usd": 1.0, "budget_tokens": 50000}},
    }
    with ProgramDatabase(run_dir / "programs.sqlite") as db:
        run_id = db.create_run(config, seed=0)
        ids = {"seed": db.add_program(scored(run_id, 0, "torch.relu(x)", 0.0, mutator="seed", rationale="seed: relu"))}
        ids["llm"] = db.add_program(
            scored(
                run_id,
                1,
                "F.gelu(x) + 0.1 * torch.sin(x)",
                0.2,
                parents=[ids["seed"]],
                mutator="llm",
                model=HOSTILE_MODEL,
                rationale=HOSTILE,
                descriptors={**DESCRIPTORS, "sign_changes": 1},
                flops=9.0,
                original_answer=f"Here.</pre></details>{HOSTILE}\n```python\n{src('F.gelu(x)')}```",
                normalisation_changes=[f"dropped `{HOSTILE}`"],
            )
        )
        db.add_llm_call(
            run_id,
            HOSTILE_MODEL,
            program_id=ids["llm"],
            prompt_tokens=1200,
            completion_tokens=300,
            latency_s=2.5,
            cost=0.0125,
            outcome="ok",
        )
        ids["child"] = db.add_program(
            scored(
                run_id,
                2,
                "F.gelu(x) + 0.2 * torch.sin(x)",
                0.3,
                parents=[ids["llm"], ids["seed"]],
                comment=HOSTILE,
                mutator="symbolic",
                rationale="scaled the sine term",
                descriptors={**DESCRIPTORS, "sign_changes": 2},
                flops=9.0,
            )
        )
        for round in range(2):
            db.add_evaluation(run_id, ids["child"], round, "search" if round == 0 else "confirm", 0.3, [])
        ids["failed"] = db.add_program(
            ProgramRecord(
                run_id=run_id,
                proposal_index=3,
                source=HOSTILE,
                parent_ids=[ids["seed"]],
                status="failed",
                mutator="llm",
                rationale=HOSTILE,
                failure_stage="policy",
                failure_code="forbidden_name",
                failure_message=HOSTILE,
            )
        )
        ids["duplicate"] = db.add_program(
            ProgramRecord(
                run_id=run_id,
                proposal_index=4,
                source=src("F.gelu(x) + 0.1 * torch.sin(x)"),
                parent_ids=[ids["seed"]],
                status="duplicate",
                duplicate_of=ids["llm"],
                mutator="symbolic",
                rationale="the same again",
            )
        )
        ids["island1"] = db.add_program(
            scored(run_id, 5, "F.gelu(x)", 0.1, island=1, mutator="seed", rationale="seed: gelu", flops=8.0)
        )
        db.add_validation(
            run_id,
            ids["child"],
            4,
            0.3,
            0.05,
            0.18,
            {"families": {"polynomial": -0.2}, "search_families": {"polynomial": -0.3}},
        )
    return run_dir, ids


def make_random_run(base: Path) -> Path:
    """A finished random-search run (the baseline) in a directory whose name is markup."""
    run_dir = base / "random<b>run\x1b[2J\u202e"  # markup, an escape sequence, a right-to-left override
    run_dir.mkdir()
    with ProgramDatabase(run_dir / "programs.sqlite") as db:
        run_id = db.create_run({"search": {"budget": 3, "islands": 1}, "mutator": {"kind": "random"}}, seed=1)
        for index, fitness in enumerate((0.0, 0.05, 0.12)):
            db.add_program(
                scored(
                    run_id,
                    index,
                    f"torch.relu(x) * {1 + index}",
                    fitness,
                    mutator="random",
                    rationale=f"random {index}",
                )
            )
        # the final check's blend of the winner: one more program, not one of the budget's proposals
        db.add_program(scored(run_id, 3, "0.5 * torch.relu(x) * 3 + 0.5 * F.gelu(x)", 0.1, mutator="blend"))
        db.update_run(run_id, status="finished")
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("serve")
    llm_run, ids = make_llm_run(base)
    with RunLock(llm_run):  # a controller holds it: the run is still going
        yield llm_run, make_random_run(base), ids


@contextmanager
def running(app):
    """The app on a real server on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    server = make_server(app, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def served(runs):
    llm_run, random_run, ids = runs
    with running(create_app([llm_run, random_run])) as url:
        yield url, ids


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    try:
        with _DIRECT.open(urllib.request.Request(url, headers=headers or {}), timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def get_json(url: str) -> dict:
    status, headers, body = get(url)
    assert status == 200 and headers["Content-Type"].startswith("application/json"), (status, body[:500])
    return json.loads(body)


def texts(block) -> list[str]:
    """Every text of a table block's cells (or of a tree's nodes)."""
    if block["type"] == "tree":
        found, stack = [], [block["root"]]
        while stack:
            node = stack.pop()
            found.append(node["text"])
            stack.extend(node["children"])
        return found
    return [c["text"] for row in block["rows"] for c in row]


RANDOM_NAME = "random<b>run\\x1b[2J\\u202e"  # the random run's directory name, as pages show it


def page_paths(ids: dict[str, int]) -> list[str]:
    return [
        "/",
        "/run/0",
        "/run/1",
        "/run/0/leaderboard",
        "/run/1/leaderboard",
        "/run/0/grid",
        f"/run/0/lineage/{ids['child']}",
        "/compare?a=0&b=1",
        *[f"/run/0/program/{pid}" for pid in ids.values()],
    ]


# ---- pages over HTTP --------------------------------------------------------------------------


def test_every_page_answers_and_escapes_hostile_text(served):
    url, ids = served
    for path in page_paths(ids):
        status, headers, body = get(url + path)
        text = body.decode()
        assert status == 200 and headers["Content-Type"].startswith("text/html"), (path, status)
        assert HOSTILE not in text and HOSTILE_MODEL not in text and "<b>run" not in text, path
        assert text.count("<script") == 1 and '<script src="/static/viewer.js" defer></script>' in text, path
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert not {"\x1b", "\u202e"} & set(text), path  # a directory's name shown escaped everywhere
    program = get(f"{url}/run/0/program/{ids['llm']}")[2].decode()
    assert f'<p class="rationale">{ESCAPED}' in program
    assert "Here.&lt;/pre&gt;&lt;/details&gt;" + ESCAPED in program  # the model's answer, collapsed
    assert f"<li>dropped `{ESCAPED}`</li>" in program  # the normaliser's note
    assert "&lt;img src=x onerror=alert(2)&gt;" in program  # the model's name, in the call table
    child = get(f"{url}/run/0/program/{ids['child']}")[2].decode()
    assert ESCAPED in child and '<pre class="diff">' in child  # source highlighted, diff shown
    assert '<span class="diff-add">+    return F.gelu(x) + 0.2 * torch.sin(x)</span>' in child
    assert '<span class="diff-del">-    return F.gelu(x) + 0.1 * torch.sin(x)</span>' in child
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="formula-svg"' in child  # the typeset formula
    failed = get(f"{url}/run/0/program/{ids['failed']}")[2].decode()
    assert "policy:forbidden_name: " + ESCAPED in failed
    assert "random&lt;b&gt;run\\x1b[2J\\u202e" in get(url + "/")[2].decode()  # a directory name is text too


def test_json_images_and_missing_things(served):
    url, ids = served
    for path in page_paths(ids):
        api = "/api/overview" if path == "/" else "/api" + path
        assert get_json(url + api)["blocks"], api
    leaderboard = get_json(f"{url}/api/run/0/leaderboard")["blocks"]["leaderboard"]
    assert HOSTILE in texts(leaderboard)  # JSON holds the text as text; the page inserts it as text
    ranked = [row[1]["text"] for row in leaderboard["rows"] if row[0]["text"] != "—"]
    assert ranked == [f"#{ids['child']}", f"#{ids['llm']}", f"#{ids['island1']}", f"#{ids['seed']}"]  # by score
    for path in (
        "/run/0/fitness.png",
        "/run/0/gap.png",
        f"/run/0/program/{ids['child']}/curve.png",
        "/run/1/fitness.png",
    ):
        status, headers, body = get(url + path)
        assert status == 200 and headers["Content-Type"] == "image/png" and body.startswith(PNG), path
    for path in (
        "/run/7",
        "/run/0/program/999999",
        "/run/1/program/5",
        f"/run/0/program/{ids['failed']}/curve.png",
        "/compare?a=0&b=9",
        "/api/run/0/lineage/999999",
        # past SQLite's integers: was an OverflowError in the query (500, a traceback on the terminal)
        "/run/0/program/9223372036854775808",
        "/api/run/0/program/99999999999999999999",
        "/run/0/lineage/99999999999999999999",
        "/run/0/program/99999999999999999999/curve.png",
    ):
        assert get(url + path)[0] == 404, path


def test_a_running_run_whose_controller_is_gone_shows_as_interrupted(tmp_path):
    """SIGKILL, out of memory, a machine that went down: nothing marked the run, nobody holds its lock."""
    killed, _ = make_llm_run(tmp_path)
    with running(create_app([killed])) as url:
        row = get_json(url + "/api/overview")["blocks"]["runs"]["rows"][0]
        assert [c["text"] for c in row[:2]] == ["llm-run", "interrupted"]
        with RunLock(killed):  # resumed: running again
            row = get_json(url + "/api/overview")["blocks"]["runs"]["rows"][0]
            assert [c["text"] for c in row[:2]] == ["llm-run", "running"]


def test_overview_shows_progress_failures_and_llm_spend(served):
    url, ids = served
    blocks = get_json(url + "/api/overview")["blocks"]
    llm_row, random_row = blocks["runs"]["rows"]
    assert [c["text"] for c in llm_row[:6]] == ["llm-run", "running", "6 / 20", "4", "1", "1"]
    assert llm_row[10]["text"] == "$0.0125 of $1 (1%)"
    assert [c["text"] for c in random_row[:4]] == [RANDOM_NAME, "finished", "3 / 3", "4"]  # 3 proposals, 1 blend
    assert random_row[10]["text"] == "—"  # no LLM: no spend
    failures = blocks["failures"]["sections"][0]["table"]
    assert [c["text"] for c in failures["rows"][0]] == ["policy", "forbidden_name", "1"]
    run = get_json(url + "/api/run/0")["blocks"]
    summary = {row[0]["text"]: row[1]["text"] for row in run["summary"]["rows"]}
    assert summary["LLM tokens"] == "1,500 of 50,000 (3%)" and summary["best by score"] == f"#{ids['child']}"
    assert run["baseline"]["rows"][0][1]["text"] == RANDOM_NAME  # the random run is the baseline
    gap = [c["text"] for c in run["gap_table"]["rows"][0][1:]]
    assert gap == ["+0.3000 ± 0.0500", "+0.1800", "+0.1200"]  # search, validation, gap


def test_lineage_grid_and_comparison(served):
    url, ids = served
    tree = get_json(f"{url}/api/run/0/lineage/{ids['llm']}")["blocks"]["tree"]["root"]
    assert tree["text"].startswith(f"#{ids['seed']} ")
    assert tree["more"] == 2  # the seed's other children: the failed one and the duplicate
    (program,) = tree["children"]
    assert program["cls"] == "current" and [c["text"].split()[0] for c in program["children"]] == [f"#{ids['child']}"]
    grids = get_json(url + "/api/run/0/grid")["blocks"]["grids"]["sections"]
    assert [s["title"] for s in grids] == [
        "island 0: 3 occupied cells",
        "island 0: elites",
        "island 1: 1 occupied cells",
        "island 1: elites",
    ]
    grid = grids[0]["table"]
    assert len(grid["rows"]) == 12 and len(grid["columns"]) == 1 + 32
    placed = {
        c["text"]: (r[0]["text"], grid["columns"][i], c["cls"])
        for r in grid["rows"]
        for i, c in enumerate(r)
        if c["text"].startswith("#")
    }
    assert placed[f"#{ids['seed']}"] == ("gp2 gn1", "b0 sc0 fl0", "cell heat0")
    assert placed[f"#{ids['child']}"] == ("gp2 gn1", "b0 sc2 fl1", "cell heat9")
    compare = get_json(url + "/api/compare?a=0&b=1")["blocks"]
    differing = {row[0]["text"]: (row[1]["text"], row[2]["text"]) for row in compare["config"]["rows"]}
    assert differing["mutator.kind"] == ('"llm"', '"random"') and "search.islands" in differing
    assert compare["top_b"]["rows"][0][5]["text"] == "random 2"


def add_programs(run_dir: Path, count: int, rationale: str) -> list[int]:
    """Append `count` scored children of the best program, as a search would while pages are open."""
    with ProgramDatabase(run_dir / "programs.sqlite") as db:
        run_id = db.latest_run()["id"]
        start, parent = db.max_proposal_index(run_id) + 1, db.best(run_id).id
        return [
            db.add_program(
                scored(
                    run_id,
                    start + i,
                    f"torch.relu(x) + {i + 1} * torch.tanh(x)",
                    0.5 + i / 10,
                    parents=[parent],
                    mutator="symbolic",
                    rationale=f"{rationale} {i}",
                )
            )
            for i in range(count)
        ]


def test_programs_written_after_the_page_was_served_appear(tmp_path, runs):
    run_dir = tmp_path / "live"
    shutil.copytree(runs[0], run_dir)
    with running(create_app([run_dir])) as url:
        status, _, page = get(url + "/run/0/leaderboard")
        assert status == 200 and "written later" not in page.decode()
        new = add_programs(run_dir, 2, "written later")
        leaderboard = get_json(url + "/api/run/0/leaderboard")["blocks"]["leaderboard"]
        assert [row[1]["text"] for row in leaderboard["rows"][:2]] == [f"#{new[1]}", f"#{new[0]}"]  # new best first
        assert "written later 1" in texts(leaderboard)
        overview = get_json(url + "/api/overview")["blocks"]["runs"]["rows"][0]
        assert overview[2]["text"] == "8 / 20"
        parent = get_json(f"{url}/api/run/0/program/{new[0]}")["blocks"]["estimate"]
        assert get(f"{url}/run/0/program/{new[1]}")[0] == 200 and parent["rows"]
        assert f"#{new[0]}" in " ".join(texts(get_json(f"{url}/api/run/0/lineage/{new[0]}")["blocks"]["tree"]))


def test_only_loopback(runs, tmp_path, capsys):
    app = create_app([runs[0]])
    for host in ("0.0.0.0", "localhost", "::1", "192.168.1.2", ""):
        with pytest.raises(ServeError, match="127.0.0.1 only"):
            make_server(app, host=host, port=0)
        with pytest.raises(ServeError):
            check_host(host)
    assert main(["serve", str(runs[0]), "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "listens on 127.0.0.1 only" in capsys.readouterr().err
    client = app.test_client()  # a page whose name was rebound to 127.0.0.1 gets nothing
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/api/overview", headers={"Host": "evil.example:8765"}).status_code == 400
    assert client.get("/", headers={"Host": "localhost:8765"}).status_code == 200


def test_ports(runs):
    app = create_app([runs[0]])
    for port in (-1, 65536, 70000):
        with pytest.raises(ServeError, match="give a port from 0 to 65535"):
            make_server(app, port=port)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ServeError, match="cannot listen on 127.0.0.1:"):
            make_server(app, port=taken.getsockname()[1])


def test_bad_run_directories_are_refused(tmp_path, capsys, monkeypatch):
    assert main(["serve", str(tmp_path), "--port", "0"]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    (tmp_path / "programs.sqlite").write_text("not a database")
    assert main(["serve", str(tmp_path), "--port", "0"]) == 2
    assert str(tmp_path / "programs.sqlite") in capsys.readouterr().err
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    monkeypatch.chdir(empty)  # no RUN_DIR and no runs/ here
    assert main(["serve", "--port", "0"]) == 2
    assert "give one or more run directories" in capsys.readouterr().err


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    "stop, parent_ignores_sigint",
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c", "ctrl-c, SIGINT ignored by the parent", "sigterm"],
)
def test_the_command_prints_its_url_serves_and_stops_on_a_signal(runs, stop, parent_ignores_sigint):
    """A process started with SIGINT ignored (a script's background job, a test runner's worker)
    inherits that, and Python then installs no Ctrl-C handler: the viewer installs its own."""
    command = [str(Path(sys.executable).with_name("actmine")), "serve", str(runs[0]), "--port", "0"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint if parent_ignores_sigint else None,
    )
    try:
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found, line + process.stderr.read() if process.poll() is not None else line
        status, _, body = get(found.group(0))
        assert status == 200 and "llm-run" in body.decode()
    finally:
        process.send_signal(stop)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0


# ---- the templates escape whatever text a cell holds ---------------------------------------------


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.data = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.data.append(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(codec="utf-8"), max_size=40))
def test_any_cell_text_renders_as_the_same_text(runs, value):
    app = create_app([runs[0]])
    block = pages.table(["a"], [[pages.cell(value), pages.cell(value, href="/run/0")]])
    with app.app_context():
        template = app.jinja_env.from_string('{% from "blocks.html" import render %}{{ render("t", b) }}')
        rendered = template.render(b=block)
    parsed = _Collector()
    parsed.feed(rendered)
    parsed.close()
    assert parsed.tags == ["div", "table", "thead", "tr", "th", "tbody", "tr", "td", "td", "a"]
    shown = pages.text(value)
    assert "".join(parsed.data).replace("\n", "") == "a" + shown + shown
    assert all(c.isprintable() for c in shown)  # control and bidirectional characters made visible


# ---- in a browser -------------------------------------------------------------------------------


def browse(tmp_path, url, budget_ms=2500):
    """The DOM of a page after `budget_ms` of (virtual) time, so that the polling script ran."""
    return chromium(tmp_path, f"--virtual-time-budget={budget_ms}", "--dump-dom", url)


@NEEDS_CHROMIUM
def test_pages_load_in_chromium_without_console_errors(tmp_path, served):
    url, ids = served
    for path in (
        "/",
        "/run/0",
        "/run/0/leaderboard",
        "/run/0/grid",
        f"/run/0/lineage/{ids['child']}",
        "/compare?a=0&b=1",
    ):
        dom = browse(tmp_path, url + path)
        assert console_problems(dom.stderr) == [], (path, dom.stderr[-2000:])
        assert "live: updated at" in dom.stdout, path  # the script fetched and drew the blocks
        assert dom.stdout.count("<script") == 1 and HOSTILE not in dom.stdout, path


@NEEDS_CHROMIUM
def test_program_page_shows_the_diff_in_chromium(tmp_path, served):
    url, ids = served
    dom = browse(tmp_path, f"{url}/run/0/program/{ids['child']}")
    assert console_problems(dom.stderr) == [], dom.stderr[-2000:]
    assert '<span class="diff-add">+    return F.gelu(x) + 0.2 * torch.sin(x)</span>' in dom.stdout
    assert ESCAPED in dom.stdout and dom.stdout.count("<script") == 1
    assert "live: updated at" in dom.stdout


class WritesAfterThePage:
    """WSGI middleware: after the leaderboard page itself has been served, the run gets new
    programs (as a search would write them while the reader looks at the page)."""

    def __init__(self, app, write):
        self.app, self.write, self.done = app, write, threading.Event()

    def __call__(self, environ, start_response):
        yield from self.app(environ, start_response)
        if environ["PATH_INFO"].endswith("/leaderboard") and not self.done.is_set():
            self.done.set()
            self.write()


@NEEDS_CHROMIUM
def test_leaderboard_updates_in_chromium_while_the_run_is_written(tmp_path, runs):
    run_dir = tmp_path / "live"
    shutil.copytree(runs[0], run_dir)
    app = create_app([run_dir])
    app.wsgi_app = WritesAfterThePage(app.wsgi_app, lambda: add_programs(run_dir, 2, "arrived while watching"))
    with running(app) as url:
        dom = browse(tmp_path, url + "/run/0/leaderboard#sort=program&desc", budget_ms=8000)
    assert app.wsgi_app.done.is_set()
    assert console_problems(dom.stderr) == [], dom.stderr[-2000:]
    assert "arrived while watching 0" in dom.stdout and "arrived while watching 1" in dom.stdout
    rows = re.findall(r'<a href="/run/0/program/(\d+)">#\d+</a></td><td>(ok|failed|duplicate)', dom.stdout)
    order = [int(pid) for pid, _ in rows]
    assert order == sorted(order, reverse=True) and len(order) == 8  # sorted by program, newest first


@NEEDS_CHROMIUM
def test_leaderboard_filters_from_the_address(tmp_path, served):
    url, ids = served
    dom = browse(tmp_path, url + "/run/0/leaderboard#filter=sine&status=ok")
    assert console_problems(dom.stderr) == [], dom.stderr[-2000:]
    shown = re.findall(r'<a href="/run/0/program/(\d+)">#\d+</a></td><td>(ok|failed|duplicate)', dom.stdout)
    assert shown == [(str(ids["child"]), "ok")]  # "scaled the sine term"; status ok
    assert 'value="sine"' in dom.stdout


def test_a_failure_s_stage_and_code_are_shown_with_control_characters_escaped():
    """The lineage grid, the leaderboard and the program page show `stage:code` from the database."""
    from actmine.evolve.database import ProgramRecord
    from actmine.serve.pages import failure_text

    record = ProgramRecord(
        run_id=1, proposal_index=0, source="", status="failed", failure_stage="probe\x1b[2J", failure_code="x\u202e\x07"
    )
    shown = failure_text(record)
    assert shown == "probe\\x1b[2J:x\\u202e\\x07"
    assert failure_text(ProgramRecord(run_id=1, proposal_index=0, source="")) == ""


def _page_width(tmp_path, html: str, base_url: str) -> int:
    """document.scrollWidth of a page in a 1200-pixel window: the page saved as a file (its links and
    stylesheet still from the server) with one script of ours that writes the width into the title."""
    page = tmp_path / f"measure-{len(list(tmp_path.iterdir()))}.html"
    page.write_text(
        html.replace('href="/', f'href="{base_url}/').replace('src="/', f'src="{base_url}/')
        + "<script>document.title = 'W=' + document.documentElement.scrollWidth</script>"
    )
    dom = chromium(tmp_path, "--window-size=1200,900", "--dump-dom", page.resolve().as_uri())
    return int(re.search(r"<title>W=(\d+)", dom.stdout).group(1))


@NEEDS_CHROMIUM
def test_one_long_word_wraps_instead_of_widening_the_page(tmp_path, runs):
    """A rationale or a failure message of one 10,000-character word (a model's or a worker's text)
    made the program page about 80 times wider than the window."""
    run_dir = tmp_path / "long"
    shutil.copytree(runs[0], run_dir)
    with sqlite3.connect(run_dir / "programs.sqlite") as connection:
        first, second = [row[0] for row in connection.execute("SELECT id FROM programs ORDER BY id LIMIT 2")]
        connection.execute("UPDATE programs SET rationale = ? WHERE id = ?", ("x" * 10_000, first))
        connection.execute(
            "UPDATE programs SET status = 'failed', failure_stage = 'screen', failure_code = 'screen_failed', "
            "failure_message = ? WHERE id = ?",
            ("y" * 10_000, second),
        )
    connection.close()
    with running(create_app([run_dir])) as url:
        for program in (first, second):
            html = get(f"{url}/run/0/program/{program}")[2].decode()
            assert _page_width(tmp_path, html, url) <= 1200, program


def test_pages_are_computed_a_few_at_a_time_and_static_files_pass():
    """Hundreds of requests at once each read the whole run (gigabytes); they wait their turn."""
    from actmine.serve.app import PAGE_SLOTS, _Bounded

    running_now, most, lock = [0], [0], threading.Lock()

    def slow_page(environ, start_response):
        with lock:
            running_now[0] += 1
            most[0] = max(most[0], running_now[0])
        time.sleep(0.05)
        with lock:
            running_now[0] -= 1
        start_response("200 OK", [])
        return [environ["PATH_INFO"].encode()]

    bounded = _Bounded(slow_page)
    answers = []
    threads = [
        threading.Thread(target=lambda i=i: answers.append(bounded({"PATH_INFO": f"/run/{i}"}, lambda *a: None)))
        for i in range(4 * PAGE_SLOTS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == PAGE_SLOTS and sorted(answers) == sorted([[f"/run/{i}".encode()] for i in range(4 * PAGE_SLOTS)])
    with contextlib.ExitStack() as stack:  # every slot taken: a static file still passes
        for _ in range(PAGE_SLOTS):
            stack.enter_context(bounded.slots)
        assert list(bounded({"PATH_INFO": "/static/viewer.js"}, lambda *a: None)) == [b"/static/viewer.js"]


def test_an_idle_connection_is_closed(monkeypatch, runs):
    """A client that connects and sends nothing held a server thread for ever (slowloris)."""
    from actmine.serve import app as serve_app

    monkeypatch.setattr(serve_app._QuietHandler, "timeout", 1)
    with running(create_app([runs[0]])) as url:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        with socket.create_connection(("127.0.0.1", port), timeout=30) as idle:
            assert idle.recv(1) == b""  # closed by the server (before, the 30 s wait ran out: socket.timeout)
        assert get(url + "/")[0] == 200  # and the server goes on


def test_a_request_the_app_never_sees_gets_the_pages_security_headers(runs):
    """A malformed request line, an unknown HTTP version, an overlong header: http.server answers them
    with its own error page, which must carry the app's Content-Security-Policy and nosniff too, and
    show what the client sent only escaped."""
    with running(create_app([runs[0]])) as url:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        for request in (
            b"GET /<script>alert(1)</script> HTTP/9.9\r\n\r\n",
            b"<img src=x onerror=alert(1)> / HTTP/1.1\r\n\r\n",
            b"<img src=x onerror=alert(1)>\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
        ):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
                connection.sendall(request)
                answer = b""
                while chunk := connection.recv(65536):
                    answer += chunk
            if not answer.startswith(b"HTTP/"):  # an HTTP/0.9 answer (a request line without a version): a
                assert b"<script>" not in answer and b"<img" not in answer  # body alone, no headers exist
                continue
            head, _, body = answer.partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
            assert 400 <= status < 600, head
            assert headers[b"Content-Security-Policy"].decode() == SECURITY_HEADERS["Content-Security-Policy"]
            assert headers[b"X-Content-Type-Options"] == b"nosniff"
            assert b"<script>" not in body and b"<img" not in body
        assert get(url + "/")[0] == 200  # the server goes on
