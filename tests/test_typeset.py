"""Formulas as pictures: LaTeX → inline SVG outlines (mathtext), its fallbacks, its safety, the report."""

import json
import re
import shutil
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actmine.evolve.seeds import SEED_EXPRESSIONS, program
from actmine.report import html as report_html
from actmine.report import write_report
from actmine.report.formula import simplified_formulas
from actmine.report.typeset import MAX_LATEX_CHARS, formula_svg, mathtext_latex
from test_report import chromium, console_problems, make_results_run, section

SVG = "{http://www.w3.org/2000/svg}"
SVG_ATTRIBUTES = {"class", "role", "focusable", "viewBox", "width", "height", "style"}
PATH_DATA = re.compile(r"^(?:[MLQCZ](?:-?\d+(?:\.\d+)? ?)*)+$")  # commands and numbers, nothing else
SILU = r"\frac{x}{1 + e^{- x}}"


def em(svg, attribute):
    return float(re.fullmatch(r"(\d+\.\d+)em", ET.fromstring(svg).get(attribute)).group(1))


def assert_clean(svg):
    """The picture is one <svg> holding one <path> of numbers: nothing else can be in the markup."""
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag == f"{SVG}svg" and set(root.attrib) == SVG_ATTRIBUTES
    assert [child.tag for child in root.iter()] == [f"{SVG}svg", f"{SVG}path"]
    path = root.find(f"{SVG}path")
    assert set(path.attrib) == {"fill", "d"} and PATH_DATA.match(path.get("d"))
    assert re.fullmatch(r"-?[\d.]+( -?[\d.]+){3}", root.get("viewBox"))
    assert re.fullmatch(r"vertical-align:-?\d+\.\d+em", root.get("style"))
    lowered = svg.lower()
    for marker in ("script", "href", "url(", "@import", "<!--", "javascript", "http:", "https:"):
        assert marker not in lowered.replace('xmlns="http://www.w3.org/2000/svg"', ""), marker
    assert svg.count("<") == 3 and svg.count(">") == 3  # <svg ...>, <path .../>, </svg>


# ---- the picture ------------------------------------------------------------------------------


def test_a_known_formula_is_a_well_formed_svg_of_paths_with_a_sensible_size():
    svg = formula_svg(SILU)
    assert_clean(svg)
    d = ET.fromstring(svg).find(f"{SVG}path").get("d")
    assert d.startswith("M") and "Q" in d and "Z" in d  # glyph outlines (quadratic curves)
    width, height = em(svg, "width"), em(svg, "height")
    # x over (1 + e^{-x}) as a display fraction: wider than tall, about two lines of text high
    assert 2.0 < width < 6.0 and 1.5 < height < 3.0 and width > height
    _, _, box_width, box_height = map(float, ET.fromstring(svg).get("viewBox").split())
    assert box_width / box_height == pytest.approx(width / height, rel=0.01)  # no stretching
    depth = float(re.search(r"vertical-align:(-\d+\.\d+)em", svg).group(1))
    assert -height < depth < 0  # the denominator hangs below the line


def test_different_formulas_give_different_pictures_and_longer_ones_are_wider():
    pictures = {latex: formula_svg(latex) for latex in ("x", "y", "x^{2}", "x^{3}", "x + x + x", SILU)}
    assert None not in pictures.values() and len(set(pictures.values())) == len(pictures)
    assert em(pictures["x + x + x"], "width") > 3 * em(pictures["x"], "width")
    assert em(pictures["x^{2}"], "height") > em(pictures["x"], "height")  # the superscript raises it


def test_pictures_are_cached_by_formula():
    assert formula_svg(r"\sin{\left(x \right)}") is formula_svg(r"\sin{\left(x \right)}")


@pytest.mark.parametrize(
    "latex",
    [
        r"\frac{x}",  # missing argument: mathtext raises ValueError
        r"\unknowncommand{x}",
        r"\begin{matrix} x \end{matrix}",  # environments other than cases
        r"\begin{cases} x & y & z \end{cases}",  # a cases row with three cells
        r"\left(x",  # unbalanced
        "x_",
        "",
        "   ",
        r"\quad",  # parses, draws nothing
        "x" * (MAX_LATEX_CHARS + 1),  # too long to be worth a picture
        "x $y$",  # a dollar would switch mathtext's modes
        "x\ny",
        "\u00e9",  # sympy's LaTeX is ASCII
        '"',  # mathtext has no double quote
    ],
)
def test_what_cannot_be_typeset_gives_none(latex):
    assert formula_svg(latex) is None


def test_formulas_up_to_the_length_limit_are_drawn():
    long = " + ".join([r"\sin{\left(x \right)}"] * 24)  # sympy-like, 596 characters
    assert len(long) <= MAX_LATEX_CHARS and formula_svg(long) is not None


@pytest.mark.parametrize(
    "hostile",
    [
        "</svg><script>alert(1)</script>",
        r"\text{</svg><script>alert(1)</script>}",
        r"\mathrm{<img src=x onerror=alert(2)>}",
        "x --> <!-- ' & </path>",
        r"\text{@import url(http://example.com/x.css)}",
    ],
)
def test_hostile_text_is_drawn_as_glyphs_never_passed_through(hostile):
    assert_clean(formula_svg(hostile))


def test_links_are_refused():
    # mathtext has no \href or \url: an unknown command, so no picture (and the message is not shown)
    assert formula_svg(r"\href{javascript:alert(1)}{x}") is None
    assert formula_svg(r"\url{http://example.com/}") is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            list("x2^_{}()<>&\"'/;:=!-+ \\$")
            + [
                "\\frac",
                "\\text",
                "\\left(",
                "\\right)",
                "\\begin{cases}",
                "\\end{cases}",
                "\\\\",
                "script",
                "href",
                "</svg>",
                "<!--",
                "-->",
            ]
        ),
        max_size=25,
    ).map("".join)
)
def test_any_text_gives_none_or_a_clean_picture(latex):
    svg = formula_svg(latex)
    if svg is not None:
        assert_clean(svg)


# ---- translating sympy's LaTeX ----------------------------------------------------------------


def test_sympy_piecewise_becomes_a_brace_before_stacked_rows():
    two = r"\begin{cases} x & \text{for}\: x \geq 0 \\0.01 x & \text{otherwise} \end{cases}"
    assert mathtext_latex(two) == r"\genfrac{\{}{.}{0}{0}{x\ \ \text{for}\: x \geq 0}{0.01 x\ \ \text{otherwise}}"
    three = r"\begin{cases} 1 & \text{for}\: x > 1 \\ x & \text{for}\: x > 0 \\0 & \text{otherwise} \end{cases}"
    assert mathtext_latex(three).count(r"\genfrac") == 2
    nested = r"\tanh{\left(\begin{cases} x & x > 0 \\ \begin{cases} 1 & x > -1 \\ 2 & \text{otherwise}\end{cases} & \text{otherwise} \end{cases}\right)}"
    assert r"\begin" not in mathtext_latex(nested) and formula_svg(nested) is not None
    assert formula_svg(three) is not None
    assert em(formula_svg(three), "height") > em(formula_svg(two), "height")  # three rows, taller


def test_short_brackets_lose_their_sizing_and_tall_ones_keep_it():
    assert mathtext_latex(r"\tanh{\left(x \right)}") == r"\tanh{(x )}"
    assert mathtext_latex(r"\max\left(0, x\right)") == r"\max(0, x)"
    assert mathtext_latex(r"\left\lfloor{x}\right\rfloor") == r"\lfloor {x}\rfloor "
    tall = r"\left(\frac{x}{2}\right) \left(e^{x} + 1\right)"
    assert mathtext_latex(tall) == tall.replace(r"\frac", r"\dfrac")
    assert mathtext_latex(r"\frac{a}{b} \fraction") == r"\dfrac{a}{b} \fraction"


def test_most_of_the_library_formulas_are_typeset():
    """Every seed (the registry's pointwise activations, the paper's included) as sympy simplifies
    it: 17 formulas, of which 3 are Piecewise (`\\begin{cases}`: leaky ReLU, ELU, SELU) that mathtext
    cannot parse as they are. With the cases translation all 17 are drawn."""
    names = list(SEED_EXPRESSIONS)
    formulas = dict(zip(names, simplified_formulas([program(SEED_EXPRESSIONS[name]) for name in names])))
    assert None not in formulas.values() and len(formulas) == 17
    assert sorted(name for name, latex in formulas.items() if r"\begin{cases}" in latex) == [
        "elu",
        "leaky_relu",
        "selu",
    ]
    assert any(r"\operatorname" in latex for latex in formulas.values())  # gelu's erf, the paper's sinc
    drawn = {name for name, latex in formulas.items() if formula_svg(latex) is not None}
    assert drawn == set(names)


# ---- in the report ----------------------------------------------------------------------------


def test_the_report_shows_the_winner_formula_as_a_picture_with_its_latex(tmp_path):
    run_dir, ids = make_results_run(tmp_path)  # the winner, program c, is F.gelu(x)
    text = write_report(run_dir, references=()).read_text()
    winner = section(text, f"program-{ids['c']}", "progress")
    picture = winner[winner.index("<span class='formula-picture'") :]
    assert re.match(r"<span class='formula-picture' title='\\frac\{x \\left\(\\operatorname\{erf\}", picture)
    assert_clean(picture[picture.index("<svg") : picture.index("</svg>") + len("</svg>")])
    assert "<details class='formula-latex'><summary>LaTeX</summary><code class='formula'>\\frac{x" in winner
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)


def test_the_report_falls_back_to_the_latex_text(tmp_path, monkeypatch):
    monkeypatch.setattr(report_html, "formula_svg", lambda latex: None)
    run_dir, ids = make_results_run(tmp_path)
    text = write_report(run_dir, references=()).read_text()
    winner = section(text, f"program-{ids['c']}", "progress")
    assert "<p>Simplified formula (LaTeX): <code class='formula'>\\frac{x" in winner and "<svg" not in text


SIZES = (
    "<script>document.body.setAttribute('data-sizes', JSON.stringify(Array.from("
    "document.querySelectorAll('svg.formula-svg'), s => {const r = s.getBoundingClientRect(), "
    "b = s.querySelector('path').getBBox(); return [r.width, r.height, b.width, b.height];})));</script>"
)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)")
def test_formula_pictures_are_visible_in_chromium(tmp_path):
    """The report itself has no scripts; a copy with one measuring script added shows that every
    formula picture is laid out with a non-zero size and draws a non-empty outline."""
    run_dir, _ = make_results_run(tmp_path)
    text = write_report(run_dir, references=()).read_text()
    assert text.count("<svg") == 3  # three candidates, each a formula
    page = tmp_path / "measured.html"
    page.write_text(text.replace("</body>", SIZES + "</body>"))
    dom = chromium(tmp_path, "--dump-dom", page.resolve().as_uri())
    assert console_problems(dom.stderr) == []
    sizes = json.loads(re.search(r'data-sizes="([^"]*)"', dom.stdout).group(1).replace("&quot;", '"'))
    assert len(sizes) == 3
    for width, height, outline_width, outline_height in sizes:
        assert width > 10 and height > 5 and outline_width > 0 and outline_height > 0
