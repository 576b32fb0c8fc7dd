"""Built-in plugins. Each module is registered through the same hooks a third-party plugin uses."""
