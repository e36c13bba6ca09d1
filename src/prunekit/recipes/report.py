"""Recipe `prunekit report`: render RUNDIR/results.jsonl into RUNDIR/report.md and figures."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path

from prunekit.data import list_tasks, primary_metric
from prunekit.errors import DataError
from prunekit.report import FIGURE_KINDS, read_results, write_report
from prunekit.report.results import REPORT_KEYS

__all__ = ["run_report"]

# The figures `write_report` names ``{task}_{kind}.png``; one of these that a new render did not
# write belongs to an earlier report (a task no longer shown, a fraction no longer run), and a
# reader of the folder would take it for current. Only a task's name leads: a user's own
# "paper_curves.png" beside the results is not one of them.
_FIGURE_NAME = re.compile(
    rf"({'|'.join(map(re.escape, list_tasks()))})_({'|'.join(FIGURE_KINDS)})\.png"
)


def run_report(
    run_dir: Path,
    notes: str = "",
    own_protocol: Sequence[dict] = (),
    tasks: Collection[str] | None = None,
) -> Path:
    """``own_protocol``: rows for the summary only (`write_report`); ``tasks``: render only
    these tasks' rows (results.jsonl keeps the others)."""
    rows = read_results(run_dir / "results.jsonl", required=REPORT_KEYS)
    if tasks is not None:
        rows = [row for row in rows if row["task"] in tasks]
    if not rows:
        raise DataError(f"{run_dir / 'results.jsonl'} has no results; run `prunekit compare` first")
    for row in rows:  # rows written before 0.2 do not name their metric
        row.setdefault("metric", primary_metric(row["task"]))
    # Render into a scratch folder first so a failure never leaves a half-updated report.
    with tempfile.TemporaryDirectory(dir=run_dir, prefix=".report-") as scratch:
        write_report(rows, Path(scratch), notes, own_protocol)
        written = {item.name for item in Path(scratch).iterdir()}
        for name in sorted(written):
            shutil.move(str(Path(scratch) / name), run_dir / name)
    for figure in run_dir.glob("*.png"):
        if _FIGURE_NAME.fullmatch(figure.name) and figure.name not in written:
            figure.unlink()
    return run_dir / "report.md"
