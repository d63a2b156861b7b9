"""Built-in plugin: synthesis (being written)."""
