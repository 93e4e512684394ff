"""A LaTeX formula as a picture: `formula_svg(latex)` → an inline SVG string, or None.

The report shows each winner's simplified formula typeset, not as raw LaTeX, and must stay one
self-contained page (no network, no scripts, no fonts to load). So the formula is laid out by
matplotlib's mathtext (offline, no TeX installation) with the Computer Modern math fonts, and every
glyph, fraction bar and radical is turned into outline paths (what `svg.fonttype = 'path'` does in
matplotlib's SVG back-end). The SVG is then written here from those outlines alone: one `<path>`
whose `d` holds numbers and path commands, inside an `<svg>` whose attributes are numbers. Nothing
from the formula's text reaches the markup (matplotlib's own SVG writer would copy the text into a
comment and add metadata with links), so a hostile formula cannot inject markup, scripts or
external references: at worst its characters are drawn as glyphs.

Bounds and fallbacks (None, and the report prints the escaped LaTeX instead): a formula longer than
`MAX_LATEX_CHARS`, one with characters outside printable ASCII (sympy's LaTeX is ASCII; `$` would
switch mathtext's modes), LaTeX that mathtext cannot parse (mathtext reports it by raising
`ValueError` with the text and a caret; the message is dropped, never shown), an empty drawing,
and outlines larger than `MAX_PATH_CHARS`. Results are cached by formula.

sympy's LaTeX that mathtext lacks is translated where that is simple: `\\begin{cases}` (sympy's
Piecewise) becomes a brace before the rows stacked by bar-less `\\genfrac`s; `\\left( x \\right)` around
short content becomes `( x )` (mathtext would draw those brackets smaller than ordinary ones);
`\\frac` becomes `\\dfrac` (inline fractions shrink nested terms past reading size).
`\\operatorname`, `\\text`, `\\max`, `\\:` and sized `\\left`/`\\right` are understood by mathtext
as they are.
"""

from __future__ import annotations

import re
import string
from collections import OrderedDict

from matplotlib.font_manager import FontProperties
from matplotlib.path import Path
from matplotlib.textpath import TextToPath

__all__ = ["formula_svg", "mathtext_latex", "MAX_LATEX_CHARS", "MAX_PATH_CHARS"]

MAX_LATEX_CHARS = 600  # longer formulas are shown as text: a picture would be unreadable anyway
MAX_PATH_CHARS = 400_000  # outlines above this are not inlined (a page per formula is too much)
MARGIN_EM = 0.05  # blank border so strokes at the edge are not clipped
_UNITS_PER_EM = TextToPath.FONT_SCALE  # mathtext lays out at this font size, in these units
_PRINTABLE = frozenset(string.printable) - frozenset("\t\n\r\x0b\x0c$")
_CASES = re.compile(r"\\begin\{cases\}((?:(?!\\begin\{|\\end\{).)*)\\end\{cases\}", re.S)
_DELIMITER = re.compile(r"\\(left|right)(\\[a-zA-Z]+|\\[{}|]|[()\[\]|./])")
_TALL = re.compile(r"\\(frac|dfrac|tfrac|genfrac|sqrt|substack|sum|prod|int|binom)|[\^_]")
_FRAC = re.compile(r"\\frac(?![a-zA-Z])")
_MAX_CASES = 20  # nested Piecewise levels translated before giving up
_CACHE_SIZE = 256
_cache: OrderedDict[str, str | None] = OrderedDict()
_text_to_path = TextToPath()
_font = FontProperties(math_fontfamily="cm", size=_UNITS_PER_EM)


def _stacked(rows: list[str]) -> str:
    """Rows one above the other, centred: mathtext has no arrays, but a fraction without a bar
    (`\\genfrac` with thickness 0, display style) stacks two, and nesting stacks more."""
    if len(rows) == 1:
        return rows[0]
    return r"\genfrac{}{}{0}{0}{" + rows[0] + "}{" + _stacked(rows[1:]) + "}"


def _cases_as_stack(match: re.Match[str]) -> str:
    """One innermost `\\begin{cases} a & c \\\\ b & d \\end{cases}` (sympy's Piecewise) as a left
    brace before the rows `a  c` / `b  d`, stacked (mathtext has no environments)."""
    rows = []
    for row in match.group(1).split(r"\\"):
        if not row.strip():
            continue
        cells = row.split("&")
        if len(cells) > 2:
            raise ValueError("a cases row with more than two cells")
        rows.append(r"\ \ ".join(cell.strip() for cell in cells))
    if not rows:
        raise ValueError("empty cases")
    if len(rows) == 1:
        return r"\left\{" + rows[0] + r"\right."
    return r"\genfrac{\{}{.}{0}{0}{" + rows[0] + "}{" + _stacked(rows[1:]) + "}"


def _plain_delimiters(latex: str) -> str:
    """`\\left( x \\right)` → `( x )` where the content is no taller than a line of text: mathtext
    sizes `\\left`/`\\right` delimiters to the content's height, which draws them smaller than
    ordinary brackets around short content (sympy writes `\\tanh{\\left(x \\right)}`). Pairs around
    fractions, roots, stacks, scripts keep their sizing; unbalanced pairs are left for mathtext."""
    stack: list[re.Match[str]] = []
    plain: list[re.Match[str]] = []
    for token in _DELIMITER.finditer(latex):
        if token.group(1) == "left":
            stack.append(token)
        elif stack:
            opening = stack.pop()
            if not _TALL.search(latex, opening.end(), token.start()):
                plain.extend((opening, token))
    for token in sorted(plain, key=lambda t: t.start(), reverse=True):
        delimiter = token.group(2)
        replacement = "" if delimiter == "." else delimiter + (" " if delimiter[-1].isalpha() else "")
        latex = latex[: token.start()] + replacement + latex[token.end() :]
    return latex


def mathtext_latex(latex: str) -> str | None:
    """sympy's LaTeX rewritten in the dialect mathtext parses well, or None when there is no simple
    rewrite (an environment other than `cases`, a malformed one). Parsing is left to mathtext."""
    for _ in range(_MAX_CASES):
        try:
            latex, count = _CASES.subn(_cases_as_stack, latex)
        except ValueError:
            return None
        if not count:
            break
    if r"\begin" in latex or r"\end" in latex:
        return None
    return _plain_delimiters(_FRAC.sub(r"\\dfrac", latex))


def _number(value: float) -> str:
    """A coordinate with one decimal (1/1000 em, far below a pixel), without trailing zeros."""
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _path_data(path: Path) -> str:
    """The outlines as SVG path data, y flipped (SVG's y grows downwards)."""
    commands = []
    letters = {Path.MOVETO: "M", Path.LINETO: "L", Path.CURVE3: "Q", Path.CURVE4: "C"}
    for vertices, code in path.iter_segments(curves=True, simplify=False):
        if code == Path.CLOSEPOLY:
            commands.append("Z")
        elif code in letters:
            points = vertices.reshape(-1, 2)
            commands.append(letters[code] + " ".join(f"{_number(x)} {_number(-y)}" for x, y in points))
    return "".join(commands)


def _render(latex: str) -> str | None:
    """The SVG of one formula, uncached; None where it cannot be drawn (see the module's doc)."""
    if len(latex) > MAX_LATEX_CHARS or not latex.strip() or not set(latex) <= _PRINTABLE:
        return None
    translated = mathtext_latex(latex)
    if translated is None:
        return None
    try:
        vertices, codes = _text_to_path.get_text_path(_font, f"${translated}$", ismath=True)
        path = Path(vertices, codes)
        extents = path.get_extents()
    except Exception:  # mathtext's ValueError on unknown LaTeX, and its odd errors on empty layouts
        return None
    if len(path.vertices) == 0 or not (extents.width > 0 and extents.height > 0):
        return None
    data = _path_data(path)
    if len(data) > MAX_PATH_CHARS:
        return None
    margin = MARGIN_EM * _UNITS_PER_EM
    left, top = extents.x0 - margin, -extents.y1 - margin
    width, height = extents.width + 2 * margin, extents.height + 2 * margin
    bottom = extents.y0 - margin  # the picture's lower edge relative to the baseline
    em = _UNITS_PER_EM
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="formula-svg" role="img" focusable="false" '
        f'viewBox="{_number(left)} {_number(top)} {_number(width)} {_number(height)}" '
        f'width="{width / em:.3f}em" height="{height / em:.3f}em" '
        f'style="vertical-align:{bottom / em:.3f}em">'
        f'<path fill="currentColor" d="{data}"/></svg>'
    )


def formula_svg(latex: str) -> str | None:
    """The formula typeset as an inline SVG (glyphs as paths, sized in em so it follows the
    surrounding text, baseline aligned), or None: then show the LaTeX as text. Cached by formula."""
    if latex in _cache:
        _cache.move_to_end(latex)
        return _cache[latex]
    svg = _render(latex)
    _cache[latex] = svg
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return svg
