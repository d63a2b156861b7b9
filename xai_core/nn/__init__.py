"""Torch building blocks that techniques, metrics and families share; they know nothing of
plugins, parameters or configs (those live in :mod:`xai_core.contracts` and above).

* :mod:`~xai_core.nn.hooks`: torch hooks that always go away, a model left as it was found.
* :mod:`~xai_core.nn.gradients`: class scores, input gradients, channel reductions.
* :mod:`~xai_core.nn.relu_rules`: guided backpropagation / deconvnet ReLU rules.
* :mod:`~xai_core.nn.layers`: which layer a layer technique reads, and its grid layout.
* :mod:`~xai_core.nn.fusion`: batch norm folding, undone on exit.
* :mod:`~xai_core.nn.images`: the one Gaussian blur and the one baseline vocabulary.
* :mod:`~xai_core.nn.progress`: the one progress bar.
"""
