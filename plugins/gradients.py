"""Built-in plugin: gradients (being written)."""
