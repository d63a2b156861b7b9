"""Figure semantics: colours say the sign, colour bars say the range, options are checked."""

from __future__ import annotations

import numpy as np
import pytest

from xai_core.errors import ConfigError
from xai_core.report.figures import (
    FigureOptions,
    attribution_title,
    overlay,
    render_map,
)


def _signed_map() -> np.ndarray:
    """Left third negative (down to -3), middle zero, right third positive (up to 2)."""
    saliency = np.zeros((30, 30), dtype=np.float32)
    saliency[:, :10] = -np.linspace(0.5, 3.0, 30)[:, None]
    saliency[:, 20:] = np.linspace(0.2, 2.0, 30)[:, None]
    return saliency


def _blue(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 2] > rgb[..., 0] + 0.003


def _red(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] > rgb[..., 2] + 0.003


def test_signed_map_keeps_its_sign_in_the_map_and_the_overlay():
    saliency = _signed_map()
    grey = np.full((30, 30, 3), 0.5, dtype=np.float32)
    rendered = render_map(saliency)
    assert rendered.signed
    blended = overlay(grey, saliency)
    for rgb in (rendered.rgb, blended):
        assert _blue(rgb[:, :10]).all(), "negative pixels must be blue"
        assert _red(rgb[:, 20:]).all(), "positive pixels must be red"
        assert not (_blue(rgb[:, 10:20]) | _red(rgb[:, 10:20])).any(), "zero has no hue"
    # Zero is white in the map and leaves the photo unchanged in the overlay.
    # The colour map's centre is near-white, not exactly 1 (a figure's colour rounding).
    assert np.allclose(rendered.rgb[:, 10:20], 1.0, atol=0.04)
    # A zero-strength blend is one float32 multiply-add on the photo: rounding well under 1e-6.
    assert np.allclose(blended[:, 10:20], 0.5, atol=1e-6)
    # The colour bar's end labels are the map's range, and it runs from blue through white to red.
    assert rendered.ticks[0] == (pytest.approx(-3.0), "-3")
    assert rendered.ticks[-1] == (pytest.approx(2.0), "2")
    assert (0.0, "0") in rendered.ticks
    assert _blue(rendered.bar[0]) and _red(rendered.bar[-1])


def test_non_negative_map_is_sequential_and_signs_can_be_chosen():
    saliency = _signed_map()
    positive = render_map(np.abs(saliency))
    assert not positive.signed and positive.low == pytest.approx(0.0)
    assert positive.ticks[-1][1] == "3"
    assert not _blue(positive.rgb).any()
    only_negative = render_map(saliency, FigureOptions(sign="negative"))
    assert (only_negative.low, only_negative.high) == (pytest.approx(-3.0), 0.0)
    assert _blue(only_negative.rgb[:, :10]).all() and not _red(only_negative.rgb).any()
    # Hidden pixels take the colour map's near-white zero (a figure's colour rounding).
    assert np.allclose(only_negative.rgb[:, 20:], 1.0, atol=0.04), "positives hidden"
    absolute = render_map(saliency, FigureOptions(sign="absolute"))
    assert absolute.strength[:, :10].min() > 0 and absolute.strength[:, 10:20].max() == 0
    masked = overlay(np.ones((30, 30, 3)), saliency, FigureOptions(overlay="masked_image"))
    assert masked[:, 10:20].max() == 0 and masked[:, 20:].min() > 0 and masked[-1, 25].min() > 0.5


def test_figure_options_are_checked_with_clear_errors():
    with pytest.raises(ConfigError, match="did you mean 'positive'"):
        FigureOptions(sign="postive")
    with pytest.raises(ConfigError, match="not a matplotlib colour map"):
        FigureOptions(cmap="rainbowz")
    with pytest.raises(ConfigError, match=r"outside \[0, 1\]"):
        FigureOptions(overlay_alpha=2)
    with pytest.raises(ConfigError, match="did you mean 'overlay_alpha'"):
        FigureOptions.from_config({"overlay_alfa": 0.3})
    assert FigureOptions.from_config(None) == FigureOptions()
    assert FigureOptions.from_config({"cmap": "coolwarm"}).cmap == "coolwarm"


def test_titles_name_target_and_prediction_with_probabilities():
    item = {
        "target_label": "tabby",
        "target_probability": 0.2134,
        "predicted_label": "Egyptian cat",
        "predicted_probability": 0.5,
    }
    assert attribution_title("saliency", item) == (
        "saliency: target: tabby (0.21); predicted: Egyptian cat (0.50)"
    )


def test_gallery_script_draws_one_figure_per_family(tmp_path):
    """scripts/figure_gallery.py makes the figures of docs/reading-figures.md (here on a tiny
    model; the docs' figures come from EfficientNet-Lite0)."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).parents[2] / "scripts" / "figure_gallery.py"
    spec = importlib.util.spec_from_file_location("figure_gallery", script)
    gallery = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gallery)
    args = ["--out", str(tmp_path), "--model", "timm/resnet10t", "--size", "32",
            "--iterations", "1"]
    assert gallery.main(args) == 0
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted([f"{stem}.jpg" for stem, *_ in gallery.FIGURES] + ["fooling.jpg"])
    assert all((tmp_path / name).stat().st_size < 80_000 for name in made)
    docs = (script.parents[1] / "docs" / "reading-figures.md").read_text()
    for name in made:
        assert f"figures/{name}" in docs, f"docs/reading-figures.md does not show {name}"


def test_a_technique_note_reaches_the_figure_title():
    from xai_core.report.figures import attribution_title

    item = {"target_label": "tabby", "target_probability": 0.3, "predicted_label": "tabby",
            "predicted_probability": 0.3,
            "metadata": {"title_note": "IG gap 3.2% > tolerance 1% at 1024 steps"}}
    title = attribution_title("integrated_gradients", item)
    assert title.splitlines()[-1] == "IG gap 3.2% > tolerance 1% at 1024 steps"
    assert "\n" not in attribution_title("saliency", {**item, "metadata": {}})


def test_titles_say_when_the_model_has_random_weights():
    from xai_core.report.figures import attribution_title

    item = {"target_label": "tabby", "target_probability": 0.3, "predicted_label": "tabby",
            "predicted_probability": 0.3}
    assert "random weights" not in attribution_title("saliency", item)
    assert attribution_title("saliency", {**item, "random_weights": True}).endswith(
        "predicted: tabby (0.30) (random weights)")


def test_display_image_is_the_rgb_view_of_any_channel_count():
    from xai_core.report.figures import display_image

    rng = np.random.default_rng(0)
    rgb = rng.uniform(-0.2, 1.2, (3, 5, 6)).astype(np.float32)
    assert np.array_equal(display_image(rgb), np.clip(rgb.transpose(1, 2, 0), 0, 1))
    swapped = np.clip(rgb[::-1].transpose(1, 2, 0), 0, 1)
    assert np.array_equal(display_image(rgb, [2, 1, 0]), swapped)
    grey = rng.uniform(0, 1, (1, 5, 6))
    assert np.array_equal(display_image(grey), np.repeat(grey.transpose(1, 2, 0), 3, axis=2))
    two = rng.uniform(0, 1, (2, 5, 6))
    assert np.array_equal(display_image(two)[..., 1], two[0])  # fewer than 3: the first, grey
    bands = rng.uniform(0, 1, (13, 5, 6))
    assert np.array_equal(display_image(bands), bands[:3].transpose(1, 2, 0))
    assert np.array_equal(display_image(bands, [12])[..., 2], bands[12])


def test_a_target_kind_title_says_its_score():
    kind = {"target_label": "label 'dog'", "target_value": 2.125, "target_value_name": "logit",
            "target_probability": 0.893}
    expected = "saliency: target: label 'dog', logit 2.12 (p 0.89)"
    assert attribution_title("saliency", kind) == expected
    diff = {"target_label": "tabby - tiger cat", "target_value": 1.7,
            "target_value_name": "logit"}
    assert attribution_title("grad_cam", diff) == "grad_cam: target: tabby - tiger cat, logit 1.7"
