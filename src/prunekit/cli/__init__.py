"""The ``prunekit`` command line. Each command turns options into a config and calls a recipe."""

from prunekit.cli import (  # noqa: F401  (register the commands)
    info_commands,
    model_commands,
    smp_commands,
    study_commands,
)
from prunekit.cli.app import app, main

__all__ = ["app", "main"]
