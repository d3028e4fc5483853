"""The configuration error type (its own module so every schema module can raise it)."""


class ConfigError(ValueError):
    """A configuration problem; the message names the file, the dotted key and the problem."""
