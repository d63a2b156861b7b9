"""The per-item figure drawn with PIL: its panels, colours, colour key and region outline."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from xai_core.report.figures import FigureOptions, render_map
from xai_core.report.render import OUTLINE, PANEL_SIDE, attribution_figure, attribution_image


def _signed_map() -> np.ndarray:
    """Left third negative (down to -3), middle zero, right third positive (up to 2)."""
    saliency = np.zeros((30, 30), dtype=np.float32)
    saliency[:, :10] = -np.linspace(0.5, 3.0, 30)[:, None]
    saliency[:, 20:] = np.linspace(0.2, 2.0, 30)[:, None]
    return saliency


def _grey(side: int = 30) -> np.ndarray:
    return np.full((side, side, 3), 0.5, dtype=np.float32)


def _panels(figure: Image.Image, side: int) -> list[tuple[int, int]]:
    """``(left, top)`` of each square panel of ``side`` pixels: found as the runs of non-white
    columns of that width through the figure's panel row."""
    pixels = np.asarray(figure.convert("RGB")).astype(int)
    coloured = (pixels < 250).any(axis=2)
    rows = np.flatnonzero(coloured.sum(axis=1) >= 3 * side)
    top = int(rows[0])
    line = coloured[top + side // 2]
    starts, run = [], 0
    for x, on in enumerate(line):
        run = run + 1 if on else 0
        if run == side:
            starts.append(x - side + 1)
    return [(left, top) for left in starts]


def _factor(side: int) -> int:
    return -(-PANEL_SIDE // side)


def test_panels_are_the_input_size_enlarged_by_a_whole_factor():
    image = np.zeros((30, 30, 3), dtype=np.float32)  # black: a panel unlike the background
    saliency = np.ones((30, 30), dtype=np.float32)
    figure = attribution_image(image, saliency, "t", FigureOptions(overlay="masked_image"))
    side = 30 * _factor(30)
    assert side >= PANEL_SIDE and side - 30 < PANEL_SIDE
    pixels = np.asarray(figure).astype(int)
    lefts = _panels(figure, side)
    assert len(lefts) >= 3
    # The input panel is exactly the black image, a 30*k square.
    left, top = lefts[0]
    assert (pixels[top : top + side, left : left + side] == 0).all()
    assert (pixels[top - 1, left : left + side] > 200).all()  # white above it
    big = attribution_image(np.zeros((256, 256, 3)), np.ones((256, 256)), "t")
    assert big.height > 256 and big.height < 2 * 256  # drawn at its own size


def test_signed_map_colours_zero_white_and_the_extremes_the_scale_ends():
    saliency = _signed_map()
    figure = attribution_image(_grey(), saliency, "t")
    k = _factor(30)
    side = 30 * k
    pixels = np.asarray(figure).astype(int)
    lefts = _panels(figure, side)
    left, top = next(p for p in lefts if p != lefts[0])  # the map panel follows the input
    cell = lambda row, col: pixels[top + row * k + k // 2, left + col * k + k // 2]  # noqa: E731
    # Zero is (near) white; the colour map's centre is 247, 247, 247 in RdBu_r.
    assert (cell(5, 15) >= 240).all() and np.ptp(cell(5, 15)) <= 3
    rendered = render_map(saliency, bar_steps=2)
    top_colour = np.round(rendered.bar[-1] * 255)
    bottom_colour = np.round(rendered.bar[0] * 255)
    # The largest value (bottom right, 2.0) has the scale's top colour, the most negative
    # (bottom left, -3) its bottom colour, within the 256-colour palette's rounding.
    assert np.abs(cell(29, 29) - top_colour).max() <= 8
    assert np.abs(cell(29, 0) - bottom_colour).max() <= 8
    assert cell(29, 29)[0] > cell(29, 29)[2] and cell(29, 0)[2] > cell(29, 0)[0]


def test_colour_key_runs_from_the_maximum_down_to_the_minimum():
    saliency = _signed_map()
    figure = attribution_image(_grey(), saliency, "t")
    k = _factor(30)
    side = 30 * k
    pixels = np.asarray(figure).astype(int)
    map_left, top = _panels(figure, side)[1]
    # The key is the first coloured column right of the map panel, as tall as the panels.
    key = next(x for x in range(map_left + side, figure.width)
               if (pixels[top + 5 : top + side - 5, x] < 250).any(axis=1).all()
               and not (pixels[top + 5, x] < 30).all())
    column = pixels[top + 2 : top + side - 2, key + 2]
    top_colour, bottom_colour = column[0], column[-1]
    assert top_colour[0] > top_colour[2] + 50, "the top of a signed key is red (the maximum)"
    assert bottom_colour[2] > bottom_colour[0] + 50, "its bottom is blue (the minimum)"
    # Zero sits at 3/5 of the way from the top (range -3 .. 2), and is white.
    zero = column[round(0.4 * (len(column) - 1))]
    assert (zero >= 230).all()
    # The key's ticks are labelled (dark text right of the bar).
    labels = pixels[top : top + side, key + 16 : key + 60]
    assert (labels < 100).all(axis=2).sum() > 20


def test_non_negative_map_is_white_to_red():
    saliency = np.tile(np.linspace(0, 1, 30, dtype=np.float32), (30, 1))
    figure = attribution_image(_grey(), saliency, "t", FigureOptions(clip_percentile=100))
    k = _factor(30)
    pixels = np.asarray(figure).astype(int)
    left, top = _panels(figure, 30 * k)[1]
    low = pixels[top + 15 * k, left + k // 2]
    high = pixels[top + 15 * k, left + 30 * k - 1 - k // 2]
    assert (low >= 240).all(), "the smallest value is white"
    assert high[0] > 80 and high[0] > high[1] + 60 and high[0] > high[2] + 60, "the largest red"


def _outline_pixels(figure: Image.Image) -> int:
    pixels = np.asarray(figure).astype(int)
    return int((np.abs(pixels - np.array(OUTLINE)).max(axis=2) <= 10).sum())


def test_a_region_is_outlined_on_the_input_and_the_overlay():
    plain = attribution_image(_grey(), _signed_map(), "t")
    assert _outline_pixels(plain) == 0
    k = _factor(30)
    boxed = attribution_image(_grey(), _signed_map(), "t", region=[3, 4, 20, 25])
    # A 2-pixel frame of (17 x 21) input pixels on two panels.
    frame = 2 * (2 * 17 * k + 2 * 21 * k) - 16
    assert _outline_pixels(boxed) == 2 * frame
    pixels = np.asarray(boxed).astype(int)
    left, top = _panels(plain, 30 * k)[0]
    assert (np.abs(pixels[top + 4 * k, left + 10 * k] - np.array(OUTLINE)) <= 10).all()
    assert (pixels[top + 10 * k, left + 10 * k] == 128).all(), "inside the box: the photo"
    mask = np.zeros((15, 15), dtype=bool)  # any resolution: scaled to the panel
    mask[4:9, 5:12] = True
    masked = attribution_image(_grey(), _signed_map(), "t", region=mask)
    assert _outline_pixels(masked) > 2 * 2 * (5 + 7) * 2 * k
    full = np.ones((15, 15), dtype=bool)
    assert _outline_pixels(attribution_image(_grey(), _signed_map(), "t", region=full)) == 0


def test_a_long_title_is_broken_into_lines_and_the_figure_grows():
    short = attribution_image(_grey(), _signed_map(), "saliency: target: a (0.50)")
    long = attribution_image(
        _grey(), _signed_map(),
        "saliency: " + "; ".join(f"target: a very long class name number {i} (0.50)"
                                 for i in range(4)) + "\nIG gap 3.2% > tolerance 1%",
    )
    assert long.width == short.width and long.height > short.height + 40


def test_the_figure_is_a_small_palette_png(tmp_path):
    path = tmp_path / "sub" / "f.png"
    rng = np.random.default_rng(0)
    image = rng.random((64, 64, 3)).astype(np.float32)
    attribution_figure(path, image, rng.standard_normal((64, 64)), "t")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.mode == "P"
        expected = attribution_image(image, rng.standard_normal((64, 64)), "t").size
        assert png.size == expected
    assert not [p for p in path.parent.iterdir() if p.name != "f.png"], "no temporary file left"


def test_a_map_that_is_not_two_dimensional_is_refused():
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        attribution_image(_grey(), np.zeros((1, 30, 30)), "t")


def test_grid_shows_each_map_with_its_key_and_says_failed_cells(tmp_path):
    from xai_core.report.render import GRID_CELL, grid_figure, grid_image

    signed = _signed_map()
    rows = [("cat\ntarget: a (0.50)\npredicted: a (0.50)", _grey()),
            ("big\ntarget: b (0.40)", np.zeros((300, 200, 3), dtype=np.float32))]
    big_map = np.tile(np.linspace(0, 1, 200, dtype=np.float32), (300, 1))
    grid = grid_image(rows, ["one", "two"], {(0, 0): signed, (1, 0): big_map, (1, 1): big_map})
    assert grid.width >= 3 * GRID_CELL
    pixels = np.asarray(grid).astype(int)
    # The failed cell (row 0, column "two") is white but for its red "failed".
    k = GRID_CELL // 30
    left = 8 + 2 * (GRID_CELL + 10)
    reds = (pixels[:, left : left + GRID_CELL, 0] > pixels[:, left : left + GRID_CELL, 2] + 60)
    first_row = reds[: GRID_CELL + 60]
    assert first_row.sum() > 20
    # The signed map of row 0 is blue on the left, red on the right, white in the middle, its
    # pixels enlarged by a whole factor; under it, its key runs blue to red.
    map_left = 8 + GRID_CELL + 10
    coloured = np.flatnonzero((pixels[:, map_left + 15 * k] < 250).any(axis=1))
    top = int(coloured[0])
    row = pixels[top + 15 * k, map_left : map_left + 30 * k]
    assert row[k // 2][2] > row[k // 2][0] + 50 and row[-1 - k // 2][0] > row[-1 - k // 2][2] + 50
    assert (row[15 * k] >= 240).all()
    key = pixels[top + 30 * k + 4 + 4, map_left : map_left + 30 * k]
    assert key[0][2] > key[0][0] + 50 and key[-1][0] > key[-1][2] + 50
    # A large image is reduced to fit the cell (aspect kept: 300 x 200 -> 160 x 107).
    black = (pixels[:, : 8 + GRID_CELL] == 0).all(axis=2)
    black[: top + GRID_CELL] = False  # row 1 only
    assert (black.sum(axis=0) > 50).sum() == round(200 * GRID_CELL / 300)  # not the text
    assert (black.sum(axis=1) > 50).sum() == GRID_CELL
    grid_figure(tmp_path / "g.png", rows, ["one", "two"], {(0, 0): signed})
    with Image.open(tmp_path / "g.png") as png:
        assert png.mode == "P" and png.size == grid_image(rows, ["one", "two"],
                                                          {(0, 0): signed}).size
