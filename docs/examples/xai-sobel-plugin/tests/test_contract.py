"""The plugin keeps xai-core's contracts: the same checks xai-core runs on its built-ins."""

from __future__ import annotations

import torch

import xai_core
from xai_core.testing import check_attributor, check_metric, check_model, check_synthesizer


def test_sobel_edges_keeps_the_attributor_contract():
    check_attributor("sobel_edges")
    check_attributor("sobel_edges", params={"smooth": 3})


def test_edge_push_keeps_the_synthesizer_contract():
    check_synthesizer("edge_push", params={"steps": 3})


def test_edge_similarity_keeps_the_metric_contract():
    check_metric("edge_similarity")


def test_edge_cnn_keeps_the_model_contract():
    check_model("edge_cnn")
    check_model("edge_cnn", options={"pretrained": True})


def test_edge_cnn_ships_exactly_the_weights_it_derives():
    from xai_sobel_plugin.model import edge_cnn_state

    shipped = xai_core.load_model("edge_cnn").module.state_dict()
    for key, value in edge_cnn_state().items():
        assert torch.equal(shipped[key], value), key


def test_edge_cnn_tells_stripes_apart():
    model = xai_core.load_model("edge_cnn")
    stripes = (torch.arange(64) // 4 % 2).float().expand(64, 64)
    pixels = torch.stack([stripes, stripes.T])[:, None].expand(2, 3, 64, 64)
    predicted = model(model.normalize(pixels)).argmax(dim=1)
    assert [model.class_names[i] for i in predicted] == ["vertical stripes", "horizontal stripes"]
