"""Built-in plugin: cam (being written)."""
