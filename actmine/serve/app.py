"""`actmine serve`: the Flask application of the live viewer, its routes, and the loopback server.

`create_app(run_dirs)` opens each run read-only (`actmine.api.open_run`) and returns the app;
`make_server(app, port=...)` binds it to 127.0.0.1 only; `serve(run_dirs, port)` is the command.

Each page is an HTML document rendered by Jinja (autoescape on) from blocks (`pages.py`) that
`run_pages.py`, `program_page.py` and `lineage_grid.py` build from a run read through `runs.py`, and
has a JSON twin under `/api/…` that `static/viewer.js` polls every `POLL_MS` to redraw the blocks in
place with `textContent` (no full reload). Figures are PNGs drawn by `report.plots`, cached by the
run's data version. Nothing is loaded from the network: the script, the stylesheets and the images
are served here, and the Content-Security-Policy allows nothing else (`default-src 'none'`).

Why 127.0.0.1 only: the pages show untrusted program text and the server has no login, so it must
not be reachable from other machines; requests whose Host header is not 127.0.0.1 or localhost are
refused too (Flask's TRUSTED_HOSTS), so that a web page that rebinds its own name to 127.0.0.1 cannot
read the runs through a visitor's browser.
"""

from __future__ import annotations

import socket
import sqlite3
import sys
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

from flask import Flask, Response, abort, jsonify, render_template, request, url_for
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler
from werkzeug.serving import make_server as werkzeug_server

from ..evolve.database import DatabaseError
from ..evolve.database_file import read_failure_message
from ..report import plots
from ..stop_signals import handling_stop_signals
from ..terminal import terminal_text
from .lineage_grid import grid_blocks, lineage_blocks
from .pages import lineage_url, program_url
from .program_page import curve_function, program_blocks, program_page, pygments_css
from .run_pages import compare_blocks, leaderboard_blocks, overview_blocks, run_blocks
from .runs import ServedRun, Snapshot, get_program, mutator_kind, read_snapshot, served_runs

__all__ = ["create_app", "make_server", "serve", "check_host", "ServeError", "LOOPBACK", "DEFAULT_PORT"]

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 8765
POLL_MS = 3000  # how often a page asks for new data
PNG_CACHE = 64  # figures kept, by (kind, run, version)

SECURITY_HEADERS = {
    # Only this server's own script, styles and images; the typeset formula's SVG carries one
    # numeric style attribute (vertical-align), hence style attributes but no style elements inline.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; style-src-elem 'self'; "
        "style-src-attr 'unsafe-inline'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

# The server answers each request in its own thread, but the figure cache, the formula caches
# (report.formula, report.typeset: plain OrderedDicts), mathtext and sympy's child are shared state:
# one figure or formula is drawn at a time.
_FIGURES = threading.Lock()


class ServeError(Exception):
    """A problem the command reports in one line (a bad run directory, host or port)."""


def check_host(host: str) -> None:
    """Refuse every interface but the loopback one (see the module's doc for why)."""
    if host != LOOPBACK:
        raise ServeError(
            f"actmine serve listens on {LOOPBACK} only, not {terminal_text(host, False)!r}: the pages "
            "show untrusted program text and have no login. To watch from another machine, forward the "
            f"port there with `ssh -L PORT:{LOOPBACK}:PORT THIS_HOST`."
        )


class _FigureCache:
    """PNG bytes by key, the newest `PNG_CACHE` kept; drawing happens under `_FIGURES`."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple, bytes] = OrderedDict()

    def get(self, key: tuple, draw: Callable[[], Any]) -> bytes:
        with _FIGURES:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            data = plots.png_bytes(draw())
            self._items[key] = data
            while len(self._items) > PNG_CACHE:
                self._items.popitem(last=False)
            return data


def _baselines(runs: Sequence[ServedRun]) -> dict[str, ServedRun]:
    """For each run that is not a random search, the first served random-search run (its best-so-far
    line is drawn beside the run's, as `actmine report --baseline` does)."""
    kinds = {served.key: mutator_kind(served) for served in runs}
    random_runs = [served for served in runs if kinds[served.key] == "random"]
    return {served.key: random_runs[0] for served in runs if random_runs and kinds[served.key] != "random"}


class _Viewer:
    """What the routes share: the served runs by URL key, each one's random-search baseline, the
    figure cache, and the two ways a route answers (a page, its JSON)."""

    def __init__(self, run_dirs: Sequence[str | Path]) -> None:
        self.runs = served_runs(run_dirs)
        self.by_key = {served.key: served for served in self.runs}
        self.baselines = _baselines(self.runs)
        self.figures = _FigureCache()

    def served_run(self, key: str) -> ServedRun:
        if key not in self.by_key:
            abort(404)
        return self.by_key[key]

    def snapshot(self, key: str) -> Snapshot:
        return read_snapshot(self.served_run(key))

    def baseline_of(self, key: str) -> Snapshot | None:
        return read_snapshot(self.baselines[key]) if key in self.baselines else None

    def compared(self) -> tuple[Snapshot, Snapshot]:
        """The runs `?a=` and `?b=` of the compare page (by default the first two)."""
        default_b = "1" if len(self.runs) > 1 else "0"
        return self.snapshot(request.args.get("a", "0")), self.snapshot(request.args.get("b", default_b))

    def page(
        self, template: str, title: str, api: str, blocks: dict[str, Any], run: ServedRun | None = None, **context: Any
    ) -> str:
        return render_template(
            template, title=title, api=api, blocks=blocks, run=run, runs=self.runs, interval=POLL_MS, **context
        )


def _data(blocks: dict[str, Any] | None, version: str = "") -> Response:
    """A page's JSON twin (what `static/viewer.js` polls); 404 where the page has no such thing."""
    if blocks is None:
        abort(404)
    return jsonify({"version": version, "blocks": blocks})


def _png(data_bytes: bytes) -> Response:
    return Response(data_bytes, mimetype="image/png")


def create_app(run_dirs: Sequence[str | Path]) -> Flask:
    """The viewer of the latest run in each directory (FileNotFoundError for a directory without a
    run, DatabaseError for a damaged or newer database; see `serve` for the command's messages)."""
    viewer = _Viewer(run_dirs)
    app = Flask(__name__)
    app.config["TRUSTED_HOSTS"] = [LOOPBACK, "localhost"]
    app.json.sort_keys = False
    _add_run_routes(app, viewer)
    _add_program_routes(app, viewer)
    _add_figure_routes(app, viewer)

    @app.errorhandler(DatabaseError)
    @app.errorhandler(sqlite3.Error)
    def unreadable(exc: Exception) -> Response:
        """A run database edited or damaged while served: the page says so in one line (plain text)."""
        message = str(exc) if isinstance(exc, DatabaseError) else read_failure_message(exc)
        return Response(terminal_text(message) + "\n", status=500, mimetype="text/plain")

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    return app


def _add_run_routes(app: Flask, viewer: _Viewer) -> None:
    """The run-level pages and their JSON: the overview, a run, its leaderboard, two runs compared."""

    @app.get("/")
    def overview() -> str:
        return viewer.page(
            "overview.html",
            "runs",
            url_for("overview_data"),
            overview_blocks([read_snapshot(served) for served in viewer.runs]),
        )

    @app.get("/api/overview")
    def overview_data() -> Response:
        return _data(overview_blocks([read_snapshot(served) for served in viewer.runs]))

    @app.get("/run/<key>")
    def run_page(key: str) -> str:
        state = viewer.snapshot(key)
        return viewer.page(
            "run.html",
            state.served.name,
            url_for("run_data", key=key),
            run_blocks(state, viewer.baseline_of(key)),
            state.served,
        )

    @app.get("/api/run/<key>")
    def run_data(key: str) -> Response:
        state = viewer.snapshot(key)
        return _data(run_blocks(state, viewer.baseline_of(key)), state.version)

    @app.get("/run/<key>/leaderboard")
    def leaderboard(key: str) -> str:
        state = viewer.snapshot(key)
        return viewer.page(
            "leaderboard.html",
            f"{state.served.name}: leaderboard",
            url_for("leaderboard_data", key=key),
            leaderboard_blocks(state),
            state.served,
        )

    @app.get("/api/run/<key>/leaderboard")
    def leaderboard_data(key: str) -> Response:
        state = viewer.snapshot(key)
        return _data(leaderboard_blocks(state), state.version)

    @app.get("/compare")
    def compare() -> str:
        a, b = viewer.compared()
        return viewer.page(
            "compare.html",
            f"{a.served.name} vs {b.served.name}",
            url_for("compare_data", a=a.served.key, b=b.served.key),
            compare_blocks(a, b),
            pair=(a.served, b.served),
        )

    @app.get("/api/compare")
    def compare_data() -> Response:
        a, b = viewer.compared()
        return _data(compare_blocks(a, b), a.version + b.version)


def _add_program_routes(app: Flask, viewer: _Viewer) -> None:
    """The pages of programs and their JSON: one program, its lineage, the MAP-Elites grids."""

    @app.get("/run/<key>/program/<int:program_id>")
    def program(key: str, program_id: int) -> str:
        served = viewer.served_run(key)
        with _FIGURES:  # the formula: sympy's child and mathtext
            shown = program_page(served, program_id)
        if shown is None:
            abort(404)
        return viewer.page(
            "program.html",
            f"{served.name}: program {program_id}",
            url_for("program_data", key=key, program_id=program_id),
            shown["blocks"],
            served,
            program=shown,
            lineage=lineage_url(key, program_id),
        )

    @app.get("/api/run/<key>/program/<int:program_id>")
    def program_data(key: str, program_id: int) -> Response:
        return _data(program_blocks(viewer.served_run(key), program_id))

    @app.get("/run/<key>/lineage/<int:program_id>")
    def lineage(key: str, program_id: int) -> str:
        state = viewer.snapshot(key)
        blocks = lineage_blocks(state, program_id)
        if blocks is None:
            abort(404)
        return viewer.page(
            "lineage.html",
            f"{state.served.name}: lineage of program {program_id}",
            url_for("lineage_data", key=key, program_id=program_id),
            blocks,
            state.served,
            program_url=program_url(key, program_id),
        )

    @app.get("/api/run/<key>/lineage/<int:program_id>")
    def lineage_data(key: str, program_id: int) -> Response:
        state = viewer.snapshot(key)
        return _data(lineage_blocks(state, program_id), state.version)

    @app.get("/run/<key>/grid")
    def grid(key: str) -> str:
        served = viewer.served_run(key)
        return viewer.page(
            "grid.html", f"{served.name}: MAP-Elites grids", url_for("grid_data", key=key), grid_blocks(served), served
        )

    @app.get("/api/run/<key>/grid")
    def grid_data(key: str) -> Response:
        return _data(grid_blocks(viewer.served_run(key)))


def _add_figure_routes(app: Flask, viewer: _Viewer) -> None:
    """The figures (PNG, cached by the run's data version), the favicon and Pygments' stylesheet."""

    @app.get("/run/<key>/fitness.png")
    def fitness_png(key: str) -> Response:
        state, baseline = viewer.snapshot(key), viewer.baseline_of(key)
        version = (state.version, baseline.version if baseline else None)
        return _png(
            viewer.figures.get(
                ("fitness", key, version),
                lambda: plots.fitness_over_time_figure(state.records, baseline=baseline.records if baseline else None),
            )
        )

    @app.get("/run/<key>/gap.png")
    def gap_png(key: str) -> Response:
        state = viewer.snapshot(key)
        return _png(
            viewer.figures.get(
                ("gap", key, state.version),
                lambda: plots.generalisation_gap_figure(state.validations, until=len(state.records)),
            )
        )

    @app.get("/run/<key>/program/<int:program_id>/curve.png")
    def curve_png(key: str, program_id: int) -> Response:
        served = viewer.served_run(key)
        with served.database() as db:
            record = get_program(served, db, program_id)
        function = curve_function(record) if record is not None else None
        if function is None:
            abort(404)
        return _png(
            viewer.figures.get(
                ("curve", key, program_id), lambda: plots.curves_figure({f"program {program_id}": function})
            )
        )

    @app.get("/favicon.ico")
    def favicon() -> Response:  # browsers ask for one; no content rather than a 404 in their console
        return Response(status=204)

    @app.get("/pygments.css", endpoint="pygments_css")  # base.html's name; as a def it would hide the import
    def pygments_stylesheet() -> Response:
        return Response(pygments_css(), mimetype="text/css")


IDLE_TIMEOUT_S = 60  # a connection that sends nothing for this long is closed (each one holds a thread)
PAGE_SLOTS = 4  # requests computed at once; each reads the run, so hundreds at once took gigabytes


class _QuietHandler(WSGIRequestHandler):
    """No line per request (the pages poll every few seconds), and an idle connection is closed
    after `IDLE_TIMEOUT_S` (a client that connects and sends nothing kept its thread for ever)."""

    timeout = IDLE_TIMEOUT_S

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own error page, for a request the app never sees (a malformed request line,
        a header too long, an unsupported HTTP version), with the headers of every page of the app:
        its Content-Security-Policy and nosniff (`SECURITY_HEADERS`)."""
        self._error_headers = True
        try:
            super().send_error(code, message, explain)
        finally:
            self._error_headers = False

    def end_headers(self) -> None:
        if getattr(self, "_error_headers", False):
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
        super().end_headers()

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        if not format.startswith("Request timed out"):  # an idle connection closed: nothing to say
            super().log_error(format, *args)


class _Bounded:
    """WSGI middleware: at most `slots` requests are computed at once, the others wait their turn;
    static files and the favicon pass at once. Each page reads every program of its run, so a few
    hundred requests at once (one local script can send them) grew the server by gigabytes."""

    def __init__(self, app: Callable, slots: int = PAGE_SLOTS):
        self.app = app
        self.slots = threading.BoundedSemaphore(slots)

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/static/") or path == "/favicon.ico":
            return self.app(environ, start_response)
        with self.slots:  # the body is made inside the slot (pages and JSON are built whole anyway)
            body = self.app(environ, start_response)
            try:
                return list(body)
            finally:
                if hasattr(body, "close"):  # as a WSGI server would, once the body is read
                    body.close()


def make_server(app: Flask, host: str = LOOPBACK, port: int = DEFAULT_PORT) -> BaseWSGIServer:
    """A threaded server of `app` on 127.0.0.1 (any other host: ServeError) and `port` (0: a free
    one; the bound port is `server.port`). Run it with `serve_forever()`."""
    check_host(host)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ServeError(f"--port {port}: give a port from 0 to 65535 (0 picks a free one)")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:  # bound here, not by werkzeug, whose own bind prints and exits the process on a busy port
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
        return werkzeug_server(
            host,
            listener.getsockname()[1],
            _Bounded(app),
            threaded=True,
            request_handler=_QuietHandler,
            fd=listener.fileno(),
        )
    except OSError as exc:
        raise ServeError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port (--port 0 picks a free one)"
        ) from None
    finally:
        listener.close()  # the server holds its own duplicate of the socket


def url_of(server: BaseWSGIServer) -> str:
    return f"http://{LOOPBACK}:{server.port}/"


def serve(
    run_dirs: Sequence[str | Path], port: int = DEFAULT_PORT, host: str = LOOPBACK, out: TextIO = sys.stdout
) -> None:
    """`actmine serve`: view the runs in a browser until Ctrl-C. Prints the URL. A directory
    without a run, a damaged database, another host than 127.0.0.1 or a busy port: ServeError."""
    check_host(host)
    if not run_dirs:
        raise ServeError("give one or more run directories (the --run-dir of `actmine search`)")
    try:
        app = create_app(run_dirs)
    except (FileNotFoundError, DatabaseError) as exc:
        raise ServeError(str(exc)) from None
    server = make_server(app, host, port)
    print(
        terminal_text(f"actmine serve: {len(run_dirs)} run(s) at {url_of(server)} (Ctrl-C to stop)"),
        file=out,
        flush=True,
    )
    try:
        with handling_stop_signals():  # Ctrl-C, SIGTERM and SIGHUP stop the server
            server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
