"""`actmine.reproduce` as a package of small modules (issue 18): every name callers import from
`actmine.reproduce` is still there, and the claims are a table (the sizes of every module are
checked for the whole package by tests/test_layering.py)."""

import actmine.reproduce as reproduce
from actmine.reproduce import claims

# names other modules, tests and benchmarks import from the package (or look up on it)
IMPORTED = (
    "Settings",
    "Claim",
    "Progress",
    "quick_settings",
    "full_settings",
    "run_reproduce",
    "build_claims",
    "write_markdown",
    "analysis",
    "score_activation",
    "load_validity",
    "spearman",
    "mean_ci",
    "short",
    "_ci_text",
    "_make_lab",
    "_save",
    "plot_lab",
    "plot_alpha",
    "plot_batch",
    "plot_transfer",
    "plot_correlation",
    "rule_not_above_zero",
    "CLAIM_RULES",
    "PAPER_FUNCTIONS",
    "REPRODUCED",
    "NOT_REPRODUCED",
    "NOT_CHECKABLE",
)


def test_the_names_callers_import_are_still_there():
    missing = [name for name in IMPORTED if not hasattr(reproduce, name)]
    assert missing == []
    assert all(name in dir(reproduce) for name in reproduce.__all__)


def test_the_claims_table_gives_the_rules_in_its_order():
    assert list(reproduce.CLAIM_RULES) == [check.id for check in claims.CLAIMS]
    assert len(set(reproduce.CLAIM_RULES)) == len(claims.CLAIMS) == 12
    # with no parts at all every claim but the probe's (stated only when the batch part ran) is listed
    stated = reproduce.build_claims(reproduce.Settings(), {})
    assert [c.id for c in stated] == [i for i in reproduce.CLAIM_RULES if i != "probe"]
    assert all(c.rule == reproduce.CLAIM_RULES[c.id] for c in stated)


def test_the_plots_save_through_the_package(monkeypatch, tmp_path):
    """A test keeps each figure on its way to disk by replacing `reproduce._save`."""
    seen = []
    monkeypatch.setattr(reproduce, "_save", lambda fig, path: seen.append(fig) or path)
    alpha = {
        "points": [{"ok": True, "alpha": 0.1, "ci": {"mean": -0.1, "low": -0.2, "high": 0.0}}],
        "best_alpha": 0.1,
        "suite": "lab",
        "seeds": [0, 1],
    }
    assert reproduce.plot_alpha(alpha, tmp_path / "a.png") == tmp_path / "a.png"
    assert len(seen) == 1 and not (tmp_path / "a.png").exists()
    reproduce.plots._plt().close(seen[0])
