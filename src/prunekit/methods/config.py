"""What a method's settings are: the base of every method's typed ``Config`` (frozen, unknown
keys refused, settings no run would read refused), the loop settings every method that trains
shares, and the reading of ``KEY=VALUE`` options and option files into them."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prunekit.errors import ConfigError
from prunekit.train import Precision

__all__ = [
    "RESUMES_AT_DEFAULT",
    "CountMode",
    "MethodConfig",
    "TrainingMethodConfig",
    "read_method_options",
]

CountMode = Literal["budget", "count"]  # a decides_count method: it chooses, or is given a count
# Marks a setting added after run dirs had recorded its method's settings, whose default keeps
# the behaviour they ran with: ``Field(..., json_schema_extra={RESUMES_AT_DEFAULT: True})``.
# A `compare` run dir recorded without it resumes while it is at its default; any other new
# setting refuses the run dir (its rows may have run another behaviour).
RESUMES_AT_DEFAULT = "resumes_at_default"


class MethodConfig(BaseModel):
    """Base of every method's settings: frozen, and unknown keys are errors.

    ``read_only_with`` maps a setting to the switch it is read under (``{"weight_lr":
    "train_weights"}``): such a setting given another value than its default while its switch
    is off is refused, since the user who gave it expects it used. ``read_only_in_mode`` does
    the same for the two modes of a method that chooses the head count (``decides_count``):
    ``"budget"`` (no head count: it decides) or ``"count"`` (a head count given), checked by
    `MethodInfo.check_modes` once the runs' modes are known.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    read_only_with: ClassVar[dict[str, str]] = {}
    read_only_in_mode: ClassVar[dict[str, CountMode]] = {}

    @model_validator(mode="after")
    def _refuse_settings_never_read(self) -> MethodConfig:
        fields = type(self).model_fields
        for setting, switch in self.read_only_with.items():
            given = getattr(self, setting) != fields[setting].get_default(call_default_factory=True)
            if given and not getattr(self, switch):
                raise ValueError(
                    f"{setting} is read only with {switch}; set {switch} or drop {setting}"
                )
        return self

    def reads_teacher(self) -> bool:
        """Whether these settings distil from the teacher a ``needs_teacher`` method gets (a
        method whose KD is optional says no when it is off: no teacher is built for it)."""
        return True


class TrainingMethodConfig(MethodConfig):
    """Settings of the training loop that every method that trains offers alike, so that a
    comparison can run all of them the same way (``loop_options()`` into its `TrainConfig`)."""

    precision: Precision = Field("fp32", description="see TrainConfig.precision")
    group_by_length: bool = Field(False, description="see TrainConfig.group_by_length")

    def loop_options(self) -> dict[str, Any]:
        return {"precision": self.precision, "group_by_length": self.group_by_length}


def read_method_options(path: Path | None, pairs: Iterable[str] = ()) -> dict[str, Any]:
    """Settings from a JSON or TOML file, then ``KEY=VALUE`` pairs on top (values parsed as
    JSON where they parse: 3, 0.1, true; otherwise kept as strings)."""
    options: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"method config file not found: {path}")
        text = path.read_text()
        try:
            loaded = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"{path} is not valid {path.suffix[1:] or 'JSON'}: {err}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a table/object of method options")
        options.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--method-option expects KEY=VALUE, got {pair!r}")
        try:
            options[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[key.replace("-", "_")] = value
    return options
