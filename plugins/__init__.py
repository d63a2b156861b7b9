"""xai-core's built-in plugins (installed as ``xai_core_plugins``).

Each module or package is an ordinary plugin, listed in xai-core's ``pyproject.toml`` under the
``xai_core`` entry-point group exactly as a third-party package would list its own. Techniques are
grouped by family, one package each, built on the public family bases of :mod:`xai_core.families`:
``gradients`` (and its ``gradients.saliency`` module, the ``saliency`` plugin), ``cam``,
``perturbation`` and ``metrics``. A package imports what it shares with another only through
``xai_core``, never from a sibling plugin.
"""
