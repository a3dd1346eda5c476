"""Every error the user can fix, in one place. The scripts report these as one line ("error: <file>: <problem>",
utils/runtime.py); anything else is a bug and shows its traceback."""


class PipelineError(Exception):
    """Bad input, model directory, weights or flags: something the user can fix."""


class ConfigError(PipelineError, ValueError):
    """Flags or configuration that cannot work together."""


class ECGDataError(PipelineError, ValueError):
    """A data file is missing, malformed or inconsistent. The message names the file."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class CheckpointError(PipelineError, RuntimeError):
    """A model or checkpoint directory is missing, incomplete, or made for another model."""


class PretrainedWeightsError(PipelineError, RuntimeError):
    """ImageNet weights could not be found, fetched, or matched to the model."""


class DataLoaderError(PipelineError, RuntimeError):
    """A DataLoader got no batch within its time limit (a stuck or killed worker, or a machine too busy): the
    message names the flag, the loader and its workers."""
