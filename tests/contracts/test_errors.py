"""User-facing errors (xai_core/errors.py): close matches and the one way messages offer them."""

from __future__ import annotations

import pytest

from xai_core.errors import ConfigError, UnknownNameError, close_matches, did_you_mean


def test_close_matches_are_fuzzy_or_substrings_best_first():
    assert close_matches("salincy", ["saliency", "occlusion"]) == ["saliency"]
    assert close_matches("resnet", ["timm/resnet18", "vit"]) == ["timm/resnet18"]
    assert close_matches("zzz", ["saliency"]) == []


def test_did_you_mean_names_up_to_n_matches_or_says_otherwise():
    choices = ["layer1", "layer2", "layer3", "layer4"]
    assert did_you_mean("layr4", choices, n=1) == "; did you mean 'layer4'?"
    keys = ["seeds", "seed_base", "model"]
    assert did_you_mean("seed", keys, n=2) == "; did you mean 'seeds', 'seed_base'?"
    assert did_you_mean("fc", choices) == ""
    assert did_you_mean("fc", choices, otherwise=".") == "."
    assert did_you_mean("a.png", ["a.jpg"], lead="did you mean the key") == (
        "; did you mean the key 'a.jpg'?"
    )


def test_unknown_name_error_offers_its_close_matches():
    error = UnknownNameError("technique", "salency", ["saliency", "occlusion"])
    assert str(error).startswith("unknown technique 'salency'; did you mean 'saliency'? ")


def test_figure_options_offer_one_close_match():
    from xai_core.report.figures import FigureOptions

    with pytest.raises(ConfigError, match=r"^figure.sign: 'postive' is not one of .*; did you "
                       r"mean 'positive'\?$"):
        FigureOptions(sign="postive")
    with pytest.raises(ConfigError, match=r"'viridsi' is not a matplotlib colour map; did you "
                       r"mean 'viridis'\? E\.g\. RdBu_r"):
        FigureOptions(cmap="viridsi")
    with pytest.raises(ConfigError, match=r"unknown option 'sing'; did you mean 'sign'\? "
                       r"Options: "):
        FigureOptions.from_config({"sing": "positive"})
