"""Checks of the figures the package writes: a PNG's pixel size read from its header, and the data a
matplotlib figure draws (bar heights, line points), so that a figure test checks the figure and not
only that some PNG was written."""

from __future__ import annotations

import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from the PNG's first chunk (IHDR); fails on anything that is not a PNG."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR"), "a PNG starts with its 13-byte IHDR chunk"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def assert_png_about(data: bytes, inches: tuple[float, float], dpi: int, slack: float = 0.2) -> tuple[int, int]:
    """The PNG is about ``inches`` × ``dpi`` pixels (a tight bounding box trims or widens it by at most
    ``slack`` of each side); returns its (width, height)."""
    width, height = png_size(data)
    for got, want in ((width, inches[0] * dpi), (height, inches[1] * dpi)):
        assert (1 - slack) * want <= got <= (1 + slack) * want, (width, height, inches, dpi)
    return width, height


def bar_heights(ax) -> list[float]:
    """The heights of the bars drawn on ``ax``, in drawing order."""
    from matplotlib.patches import Rectangle

    return [patch.get_height() for patch in ax.patches if isinstance(patch, Rectangle)]


def line(ax, label: str):
    """The one line of ``ax`` with this label."""
    lines = [artist for artist in ax.get_lines() if artist.get_label() == label]
    assert len(lines) == 1, [artist.get_label() for artist in ax.get_lines()]
    return lines[0]
