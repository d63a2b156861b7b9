"""runner.scoring: one metric's failure is that metric's message; a caller's mistake is loud."""

import pytest
import torch

from xai_core.contracts.metric import Metric
from xai_core.runner.scoring import score_maps


class _Broken(Metric):
    name = "broken_metric"
    higher_is_better = True

    def compute(self, model, inputs, maps, targets, context):
        raise RuntimeError("no score today")


def test_a_failing_metric_gives_its_message_and_a_wrong_keyword_raises():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2)).eval()
    inputs, maps = torch.rand(2, 3, 4, 4), torch.rand(2, 4, 4)
    scored = score_maps([("b", _Broken())], model, inputs, maps, [0, 1], seed=0)
    assert scored == {"b": "RuntimeError: no score today"}
    with pytest.raises(TypeError, match="'mask'"):
        score_maps([("b", _Broken())], model, inputs, maps, [0, 1], mask=None)
