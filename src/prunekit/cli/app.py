"""The ``prunekit`` typer app, its shared option types and error handling.

A `PrunekitError` (bad input the user can fix) prints one line on stderr and exits with 2;
anything else is a bug and keeps its traceback.
"""

import functools
import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from prunekit.errors import PrunekitError

app = typer.Typer(
    name="prunekit",
    help="Prune Transformer encoders into physically smaller Hugging Face models, with proof.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

Seed = Annotated[
    int,
    typer.Option(min=0, max=2**32 - 1, help="Seed for every random choice; same seed, same plan."),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        help="GLUE data in the glue_data layout (default: $GLUE_DIR).", show_default=False
    ),
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]
DeviceOption = Annotated[str, typer.Option(help="auto (cuda when present), cpu, cuda or cuda:N.")]
MethodOption = Annotated[
    list[str] | None,
    typer.Option(
        help="Method setting KEY=VALUE (repeatable), e.g. steps=300 for l0; "
        "`prunekit methods` lists each method's settings."
    ),
]
MethodConfigFile = Annotated[
    Path | None,
    typer.Option(help="JSON or TOML file of method settings (--method-option wins)."),
]


def user_errors(fn):
    """Turn PrunekitError, and a flag value the command's settings refuse (pydantic), into one
    stderr line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PrunekitError as err:
            message = str(err)
        except ValidationError as err:
            first = err.errors()[0]
            # the innermost named field: ("seeds", 0) is --seeds, not --0
            names = [part for part in first["loc"] if isinstance(part, str)]
            flag = "--" + names[-1].replace("_", "-") if names else "input"
            message = f"{flag}: {first['msg']}"
        typer.echo(f"prunekit: error: {message}", err=True)
        raise typer.Exit(2)

    return wrapper


def emit(data: dict[str, Any], as_json: bool, human: str) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        from prunekit.recipes.common import console

        console.print(human, highlight=False, markup=False)


def train_config(**kwargs: Any):
    """Training settings from flags (None = the default); bad values reach `user_errors`."""
    from prunekit.recipes.finetune import TrainConfig

    return TrainConfig(**{k: v for k, v in kwargs.items() if v is not None})


def main() -> None:
    logging.basicConfig(level=os.environ.get("PRUNEKIT_LOG", "WARNING"))
    app()
