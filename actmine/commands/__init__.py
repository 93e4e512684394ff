"""What each `actmine` subcommand does: one module per group of subcommands.

`actmine.cli` holds the command line itself (the parser, whose help text is the documentation,
and `main`, which checks the shared options and dispatches to a `cmd_*` function); the
`cmd_*` functions live here:

    common.py      exit statuses, the lab the scoring commands share, number and list formats
    scoring.py     list, evaluate, compare
    search.py      search (and its end-of-run summary), llm check
    runs.py        report, serve, export: the commands that read a run directory
    downstream.py  transfer and validate: real models trained with each activation
    reproduce.py   reproduce: the paper's claims checked by our lab

This package sits just below `actmine.cli` and never imports it; every name that was defined in
`actmine.cli` before the split is still importable from there.
"""
