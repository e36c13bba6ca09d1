"""Errors a user can fix. The CLI turns each into one line on stderr and exit code 2."""

__all__ = [
    "PrunekitError",
    "ConfigError",
    "DataError",
    "ModelLoadError",
    "UnsupportedModelError",
    "PlanError",
    "SurgeryError",
    "OutputExistsError",
    "ExportError",
]


class PrunekitError(Exception):
    """Base class: anything raised as a PrunekitError is the user's to fix, not a bug."""


class ConfigError(PrunekitError):
    """An option or configuration value is out of range or inconsistent."""


class DataError(PrunekitError):
    """A task is unknown or its data cannot be found or parsed."""


class ModelLoadError(PrunekitError):
    """A model directory is missing, incomplete or corrupt."""


class UnsupportedModelError(PrunekitError):
    """The architecture has no prunekit adapter."""


class PlanError(PrunekitError):
    """A PruningPlan is invalid for the model it is applied to."""


class SurgeryError(PrunekitError):
    """Weights could not be sliced as the plan asks."""


class OutputExistsError(PrunekitError):
    """The output directory exists and --overwrite was not given."""


class ExportError(PrunekitError):
    """A model could not be exported, or the export does not reproduce the model's outputs."""
