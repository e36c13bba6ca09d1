"""`prunekit compare`'s settings: the typed config, the parsing of its CLI options, and the
rule for resuming a run dir (its rows are found by run key alone, so a sweep must share the
settings every row depends on with the sweep that wrote them), and what later sweeps reuse:
rows of another run dir with the same settings (``borrow_from``) and the plans decided by
earlier sweeps of this one (R1 at a fraction whose R0 ran before does not decide again)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prunekit.data import get_task
from prunekit.errors import ConfigError
from prunekit.methods import (
    RESUMES_AT_DEFAULT,
    MethodResult,
    TrainingMethodConfig,
    get_method,
    list_methods,
    read_method_options,
)
from prunekit.plan import PruningPlan
from prunekit.recipes.common import MAX_SEED, console
from prunekit.report import read_results
from prunekit.train import DistillConfig, Precision, TrainConfig, asked_loop_options
from prunekit.train.task_recipes import TaskRecipe, recipe_for

__all__ = [
    "REGIMES",
    "CompareConfig",
    "RESULT_SETTINGS",
    "dense_recipe",
    "per_method_options",
    "plan_memo_path",
    "read_plan_memo",
    "refuse_other_settings",
    "resolved_settings",
    "borrowed_rows",
    "check_sweep_choices",
    "run_dir_settings",
    "run_key",
    "value_key",
    "settings_differ",
    "with_loop_options",
    "write_plan_memo",
]

REGIMES = ("r0", "r1")


def run_key(method: str, fraction: float, seed: int, regime: str) -> str:
    return f"{method}|{value_key(fraction)}|{seed}|{regime}"


def value_key(value: float) -> str:
    """A fraction or budget as row keys write it: two values closer than 1e-4 share a key."""
    return f"{value:.4f}"


def _budget_methods() -> tuple[str, ...]:
    return tuple(m for m in list_methods() if get_method(m).decides_count)


def _head_methods() -> tuple[str, ...]:
    """The default sweep: methods that prune heads of a fine-tuned model to a given count
    (budget-mode searches run through ``budgets`` instead)."""
    return tuple(
        m
        for m in list_methods()
        if "heads" in (info := get_method(m)).targets
        and not (info.decides_count or info.prunes_pretrained)
    )


class CompareConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str
    out: Path
    model: str = "default"
    methods: tuple[str, ...] = Field(default_factory=_head_methods)
    fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    seeds: tuple[Annotated[int, Field(ge=0, le=MAX_SEED)], ...] = (0, 1, 2)
    regimes: tuple[str, ...] = REGIMES
    data_dir: Path | None = None
    recipe: TaskRecipe | None = Field(None, description="dense recipe (default: the task's)")
    dense_cache: Path | None = Field(
        None, description="default: runs/dense ($PRUNEKIT_DENSE_CACHE)"
    )
    recover: TrainConfig = TrainConfig(epochs=1)
    recover_max_samples: int | None = Field(None, ge=1)
    distill: DistillConfig | None = None
    search_samples: int | None = Field(None, ge=1)
    eval_max_samples: int | None = Field(None, ge=1, description="cap on validation/dev examples")
    method_options: dict[str, dict[str, Any]] = {}
    budgets: tuple[float, ...] = ()
    budget_methods: tuple[str, ...] = Field(
        default_factory=_budget_methods, description="methods run once per budget"
    )
    precision: Precision = Field(
        "fp32",
        description="bf16: recovery and every method that trains (unless its method options "
        "say otherwise) autocast to bfloat16; fp32 leaves recover and method_options as given",
    )
    group_by_length: bool = Field(
        False,
        description="recovery and every method that trains use length-grouped batches (unless "
        "its method options say otherwise); False leaves recover and method_options as given",
    )
    borrow_from: tuple[Path, ...] = Field(
        (),
        description="run dirs of other sweeps (another benchmark's) whose rows this sweep would "
        "otherwise run again: taken when their config.json records the same result settings "
        "and method settings, marked borrowed_from",
    )
    time_speed: bool = True
    time_onnx: bool = Field(False, description="also time both models in ONNX Runtime")
    device: str = "auto"
    progress: bool = True

    @field_validator("task")
    @classmethod
    def _canonical_task(cls, task: str) -> str:
        return get_task(task).name  # "SST-2" resumes a dir "sst2" wrote: one task, one name


def per_method_options(pairs: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``METHOD.KEY=VALUE`` strings to ``{method: {key: value}}`` (values parsed as JSON)."""
    options: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        method, dot, setting = pair.partition(".")
        if not dot or "=" not in setting:
            raise ConfigError(f"--method-option expects METHOD.KEY=VALUE, got {pair!r}")
        options.setdefault(method, {}).update(read_method_options(None, [setting]))
    return options


def dense_recipe(task: str, whole_split: int | None = None, **overrides: Any) -> TaskRecipe | None:
    """The task's dense recipe with the given (not None) fields replaced; None if none are.
    A ``max_train_samples`` equal to ``whole_split`` (the CLI's 0) lifts the recipe's subset."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if whole_split is not None and given.get("max_train_samples") == whole_split:
        given["max_train_samples"] = None
    if not given:
        return None
    return TaskRecipe.model_validate(recipe_for(task).model_dump() | given)  # bounds checked


def with_loop_options(config: CompareConfig) -> CompareConfig:
    """``config`` with its non-default loop options (precision, group_by_length) set on the
    recovery and on every method that trains, so that all of them train the same way."""
    loop = asked_loop_options(config.precision, config.group_by_length)
    if not loop:
        return config
    options = {m: dict(o) for m, o in config.method_options.items()}
    budget_methods = config.budget_methods if config.budgets else ()
    for method in {*config.methods, *budget_methods}:
        if issubclass(get_method(method).config, TrainingMethodConfig):
            options[method] = {**loop, **options.get(method, {})}  # explicit options win
    return config.model_copy(
        update={"recover": config.recover.model_copy(update=loop), "method_options": options}
    )


# What every row of a run dir depends on: a sweep that resumes a dir (rows are found by run key
# alone) must share them with the one that wrote it. Methods, fractions, seeds, regimes,
# budgets, timing, the device and where the data lives may differ between sweeps of one dir.
RESULT_SETTINGS = (
    "task",
    "model",
    "recipe",
    "recover",
    "recover_max_samples",
    "distill",
    "search_samples",
    "eval_max_samples",
    "precision",
    "group_by_length",
)


def resolved_settings(method: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """A method's settings with its defaults filled in, as JSON values."""
    return get_method(method).parse_config(options).model_dump(mode="json")


# How a capped validation/dev split is drawn. Before 0.2 each seed drew its own subset; a run
# dir of capped rows without this mark holds rows of that other draw.
EVAL_SUBSET = "one subset for every seed"


def run_dir_settings(config: CompareConfig, budget_methods: tuple[str, ...]) -> dict[str, Any]:
    """What a run dir's config.json records: this sweep's settings, and under
    ``method_settings`` every method's settings with its defaults filled in (those of earlier
    sweeps kept), so a later sweep is also refused when a method's default changed."""
    path = config.out / "config.json"
    before = json.loads(path.read_text()).get("method_settings", {}) if path.is_file() else {}
    ran = {*config.methods, *budget_methods}
    now = {m: resolved_settings(m, config.method_options.get(m)) for m in sorted(ran)}
    return {
        **config.model_dump(mode="json"),
        "method_settings": {**before, **now},
        "eval_subset": EVAL_SUBSET,
    }


def settings_differ(
    config: CompareConfig, before: dict[str, Any], methods: Iterable[str]
) -> list[str]:
    """The result-affecting settings, and the settings of ``methods`` that both ran, in which a
    run dir's recorded ``before`` (its config.json) differs from ``config``."""
    now = config.model_dump(mode="json")
    before, now = _without_recovery_device(before), _without_recovery_device(now)
    before, now = _recipe_spelled_out(before, config.task), _recipe_spelled_out(now, config.task)
    differ = [f for f in RESULT_SETTINGS if f in before and before[f] != now[f]]
    if before.get("eval_max_samples") is not None and before.get("eval_subset") != EVAL_SUBSET:
        differ.append("eval_max_samples, drawn per seed before 0.2")
    resolved = before.get("method_settings", {})
    ran_before = {*before.get("methods", ()), *before.get("budget_methods", ()), *resolved}
    for method in sorted(ran_before & set(methods)):
        if method in resolved:  # recorded with its defaults: a changed default shows too
            now_settings = resolved_settings(method, config.method_options.get(method))
            same = _same_settings(method, resolved[method], now_settings)
        else:  # an older run dir: only the options it was given are known
            info = get_method(method)
            try:
                old = info.parse_config(before.get("method_options", {}).get(method))
            except ConfigError:  # options of an older version: they cannot be compared
                continue
            same = old == info.parse_config(config.method_options.get(method))
        if not same:
            differ.append(f"method_options.{method}")
    return differ


def _same_settings(method: str, recorded: dict[str, Any], now: dict[str, Any]) -> bool:
    """Whether a method's recorded settings are ``now``'s. A setting missing from the record
    counts as the same only when it is marked `RESUMES_AT_DEFAULT` and is at its default."""
    info = get_method(method)
    defaults = info.parse_config(None).model_dump(mode="json")  # as JSON, like ``now``
    added = {
        name
        for name in now.keys() - recorded.keys()
        if (info.config.model_fields[name].json_schema_extra or {}).get(RESUMES_AT_DEFAULT)
        and now[name] == defaults[name]
    }
    return recorded == {k: v for k, v in now.items() if k not in added}


def _recipe_spelled_out(settings: dict[str, Any], task: str) -> dict[str, Any]:
    """No recipe (the task's) and the task's recipe given field by field are one recipe."""
    if "recipe" not in settings or settings["recipe"] is not None:
        return settings
    return settings | {"recipe": recipe_for(task).model_dump(mode="json")}


def _without_recovery_device(settings: dict[str, Any]) -> dict[str, Any]:
    """Where recovery ran is not a result."""
    if not isinstance(settings.get("recover"), dict):
        return settings
    return settings | {"recover": {k: v for k, v in settings["recover"].items() if k != "device"}}


def refuse_other_settings(config: CompareConfig, budget_methods: tuple[str, ...]) -> None:
    """Raise when ``config.out`` holds rows of other result-affecting settings, or is a
    folder of something else (a model, a `run` job), whose config.json a sweep would replace."""
    path = config.out / "config.json"
    if _foreign_folder(config.out):
        raise ConfigError(
            f"{config.out} holds files that are not a compare sweep's (its config.json would be "
            "replaced); choose another --out"
        )
    if not path.is_file() or not read_results(config.out / "results.jsonl"):
        return  # no rows yet: nothing of other settings to mix with (a run that failed early)
    before = json.loads(path.read_text())
    differ = settings_differ(config, before, {*config.methods, *budget_methods})
    if differ:
        raise ConfigError(
            f"{config.out} holds results of other settings ({', '.join(differ)}), and rows are "
            "resumed by run key alone; use another --out, or delete it to start over"
        )


def _foreign_folder(out: Path) -> bool:
    """A non-empty folder with neither a sweep's rows nor a sweep's config.json."""
    if not out.is_dir() or (out / "results.jsonl").exists():
        return False
    visible = [p for p in out.iterdir() if not p.name.startswith(".")]
    if not visible:
        return False
    try:
        recorded = json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        return True
    return not (isinstance(recorded, dict) and {"methods", "regimes"} <= recorded.keys())


def borrowed_rows(
    config: CompareConfig, budget_methods: tuple[str, ...], done: set[str]
) -> list[dict[str, Any]]:
    """The rows of ``config.borrow_from`` this sweep would run and has not: rows are only taken
    from a dir run with the same result settings and, per row, the same resolved settings of
    its method (dirs without them are skipped). Each is marked ``borrowed_from``."""
    wanted = {
        run_key(m, f, seed, r)
        for m in config.methods
        for f in config.fractions
        for seed in config.seeds
        for r in config.regimes
    }
    wanted |= {
        run_key(f"{m}-budget", b, seed, "r0")
        for m in budget_methods
        for b in config.budgets
        for seed in config.seeds
    }
    wanted -= done
    rows: list[dict[str, Any]] = []
    for source in config.borrow_from:
        path, results = source / "config.json", source / "results.jsonl"
        if not (path.is_file() and results.is_file()):
            # skipped (a benchmark names dirs that may not have run yet), but said: a typo
            # would otherwise borrow nothing without a word
            console.log(f"--borrow-from {source}: no config.json and results.jsonl, nothing taken")
            continue
        before = json.loads(path.read_text())
        if settings_differ(config, before, ()):
            continue
        resolved = before.get("method_settings", {})
        for row in read_results(results):
            if row.get("key") not in wanted:
                continue
            method = row["method"].removesuffix("-budget")
            if method in resolved and not settings_differ(config, before, (method,)):
                rows.append(row | {"borrowed_from": str(source)})
                wanted.discard(row["key"])
    return rows


def plan_memo_path(out: Path, identity: list[Any]) -> Path:
    """Where a run dir keeps the plan of one decision, named by what decided it (method first,
    then its resolved settings, the fraction, seed, dense model and data)."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return out / "work" / "plans" / f"{identity[0]}-{digest}.json"


def read_plan_memo(path: Path) -> MethodResult | None:
    """The kept decision, or None when there is none."""
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    plan, record = PruningPlan.from_json(saved["plan"]), saved["record"]
    if "certificate" in (plan.meta or {}):  # memos written before the record kept it
        record.setdefault("certificate", plan.meta["certificate"])
    return MethodResult(plan, record=record)


def write_plan_memo(path: Path, result: MethodResult) -> None:
    """Keep a decision for later sweeps: its plan is all R1 needs of a method that only
    decided. One that trained weights (or left masks) decides again; its weights are not kept."""
    if result.trained_weights or result.plan.sparse_masks is not None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # a kill leaves no torn memo
    record = {"decision_seconds": result.record["decision_seconds"]}
    if "certificate" in result.record:  # A*'s: an R1 sweep reading the plan back reports it
        record["certificate"] = result.record["certificate"]
    tmp.write_text(json.dumps({"plan": result.plan.to_json(), "record": record}))
    tmp.replace(path)


def check_sweep_choices(config: CompareConfig, budget_methods_given: bool) -> None:
    """The CLI's choices that would run nothing, or be dropped without a word, as one line each
    (benchmarks share method options across their sweeps, so this is the command's check)."""
    if not config.seeds or not config.regimes:
        raise ConfigError(f"--{'seeds' if not config.seeds else 'regimes'} is empty; give one")
    if not (config.methods and config.fractions) and not config.budgets:
        raise ConfigError("nothing to run: give --methods and --heads, or --budgets")
    if budget_methods_given and not config.budgets:
        raise ConfigError("--budget-methods runs at --budgets; add --budgets B1,B2")
    if config.time_onnx and not config.time_speed:
        raise ConfigError("--onnx-timing adds ONNX Runtime to the speed timing; drop --no-timing")
    ran = {*config.methods, *(config.budget_methods if config.budgets else ())}
    if unused := sorted(set(config.method_options) - ran):
        raise ConfigError(
            f"--method-option names {', '.join(unused)}, which this sweep does not run"
        )
