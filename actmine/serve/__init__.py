"""`actmine serve`: a live local web viewer of search runs (docs/serve.md).

- `app.py`: the Flask application (`create_app`), its routes and the 127.0.0.1-only server (`serve`).
- `runs.py`: the served runs, each read read-only (a snapshot per request, one program).
- `pages.py`: the blocks pages are made of (tables, cells, trees, images), the URLs, text as shown.
- `run_pages.py`: the runs overview, a run's page, its leaderboard, two runs compared.
- `program_page.py`: one program (source, diff, formula, scores, probes, LLM calls).
- `lineage_grid.py`: a program's lineage tree and the MAP-Elites grids.
- `templates/`: the Jinja2 pages (autoescape); `static/`: the polling script and the stylesheet.
"""

from .app import DEFAULT_PORT, LOOPBACK, ServeError, check_host, create_app, make_server, serve

__all__ = ["create_app", "make_server", "serve", "check_host", "ServeError", "LOOPBACK", "DEFAULT_PORT"]
