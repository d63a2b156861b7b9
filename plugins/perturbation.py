"""Built-in plugin: perturbation (being written)."""
