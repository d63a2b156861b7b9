"""xai-core's built-in plugins (installed as ``xai_core_plugins``).

Each module is an ordinary plugin, listed in xai-core's ``pyproject.toml`` under the
``xai_core`` entry-point group exactly as a third-party package would list its own.
"""
