"""The project's own error types: the scripts report these as one line ("error: <file>: <problem>");
anything else is a bug and shows its traceback."""


class PipelineError(Exception):
    """Bad input, model directory, weights or flags: something the user can fix."""


class ConfigError(PipelineError, ValueError):
    """Flags or configuration that cannot work together."""
