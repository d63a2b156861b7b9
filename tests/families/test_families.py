"""The public family bases as a third party uses them: a new CAM and a new gradient method, each an
out-of-tree plugin of a few lines, registered at run time and checked against a computation
written out by hand.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from numerics import assert_float32_close
from torch import nn

import xai_core
from xai_core.errors import PluginError
from xai_core.nn.gradients import input_gradients
from xai_core.plugins.manager import unregister_plugin

# --- the two out-of-tree plugins (each must stay under 30 lines) ---------------------------------


class MaxGradCamPlugin:
    """A CAM whose channel weights are the largest gradient over the layer's cells."""

    class MaxGradCam(xai_core.GradientCam):
        name = "max_grad_cam"
        summary = "activations weighted by the largest gradient of each channel"

        def cam_weights(self, activations, gradients):
            return gradients.amax(dim=(2, 3))

    @xai_core.hookimpl
    def register_attributors(self, register):
        register(self.MaxGradCam)


class GradientSquaredPlugin:
    """A gradient method: the squared input gradient, per channel."""

    class GradientSquared(xai_core.GradientAttributor):
        name = "gradient_squared"
        summary = "squared gradient of the class score w.r.t. the input"

        def input_attributions(self, model, inputs, targets, context):
            return input_gradients(model, inputs, targets, self.params.channels_last) ** 2

    @xai_core.hookimpl
    def register_attributors(self, register):
        register(self.GradientSquared)


# --- fixtures ----------------------------------------------------------------------------------


def tiny_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 5),
    ).eval()


@pytest.fixture
def plugins():
    names = [
        xai_core.register_plugin(MaxGradCamPlugin(), name="max_grad_cam_plugin"),
        xai_core.register_plugin(GradientSquaredPlugin(), name="gradient_squared_plugin"),
    ]
    yield
    for name in names:
        unregister_plugin(name)


@pytest.mark.parametrize("plugin", [MaxGradCamPlugin, GradientSquaredPlugin])
def test_a_new_method_is_a_plugin_of_under_30_lines(plugin):
    lines, _ = inspect.getsourcelines(plugin)
    assert len(lines) < 30


def test_a_new_cam_is_one_cam_weights_method(plugins):
    model, x, targets = tiny_model(), torch.randn(2, 3, 16, 16), torch.tensor([1, 3])
    cam = xai_core.get_attributor("max_grad_cam", layer="2", normalize="none", upsample="nearest")
    result = cam.attribute(model, x, targets)
    # By hand: the layer's output, the gradient of each item's class score at it, the map.
    activations = model[:3](x).detach().requires_grad_()
    scores = model[3:](activations)[torch.arange(2), targets]
    (gradients,) = torch.autograd.grad(scores.sum(), activations)
    weights = gradients.amax(dim=(2, 3))[:, :, None, None]
    expected = (weights * activations).sum(dim=1).clamp_min(0)
    expected = F.interpolate(expected[:, None].detach(), size=(16, 16), mode="nearest")[:, 0]
    assert result.metadata["layer"] == "2"
    # Forward to the layer and back from the score (3 layers), weights x activations over 4
    # channels; widest reduction the 3x3x4 convolution.
    assert_float32_close(result.maps, expected, depth=3 + 1, fan_in=3 * 3 * 4)


def test_a_new_gradient_method_is_one_input_attributions_method(plugins):
    model, x, targets = tiny_model(), torch.randn(2, 3, 16, 16), torch.tensor([0, 4])
    result = xai_core.get_attributor("gradient_squared").attribute(model, x, targets)
    leaf = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(model(leaf)[torch.arange(2), targets].sum(), leaf)
    # The base applies ``abs`` (off) and ``reduction`` (``sum`` by default) to the squares.
    # The gradient back through 3 layers (3x3x4 the widest reduction), squared and summed.
    assert_float32_close(result.maps, (grad**2).sum(dim=1), depth=3 + 2, fan_in=3 * 3 * 4)
    # The shared parameters come with the base: another reduction needs no code.
    top = xai_core.get_attributor("gradient_squared", reduction="max").attribute(model, x, targets)
    assert_float32_close(top.maps, (grad**2).amax(dim=1), depth=3 + 2, fan_in=3 * 3 * 4)


def test_a_cam_without_cam_weights_is_refused_at_registration():
    class Incomplete(xai_core.GradientCam):
        name = "incomplete_cam"

    class Plugin:
        @xai_core.hookimpl
        def register_attributors(self, register):
            register(Incomplete)

    name = xai_core.register_plugin(Plugin(), name="incomplete_cam_plugin")
    try:
        with pytest.raises(PluginError, match="cam_weights"):
            xai_core.list_attributors()
    finally:
        unregister_plugin(name)


def test_cam_weights_of_the_wrong_shape_name_the_contract():
    class Wrong(xai_core.GradientCam):
        name = "wrong_cam"

        def cam_weights(self, activations, gradients):
            return gradients.mean(dim=(1, 2, 3))

    with pytest.raises(PluginError, match=r"\[N, C\]"):
        Wrong(layer="2").attribute(tiny_model(), torch.randn(1, 3, 16, 16), 0)
