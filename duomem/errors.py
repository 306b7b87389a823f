"""The config error, in a module of its own: the config check (duomem.config_check) runs the SFT
builder's template check, and the SFT builder raises this error, so neither imports the other."""


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and what is allowed."""
