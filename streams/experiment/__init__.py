"""``tierflow experiment``: configurations side by side on the same frames, and a report.

:mod:`.spec` reads experiment files, :mod:`.run` runs a pipeline experiment's configurations
over one recording, :mod:`.report` writes the report; ``kind = "simulation"`` files (the
thesis's placement studies, no broker) are run by
:func:`tierflow.operators.planning.simulations.run_simulation_experiment`.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from rich.console import Console

from tierflow.settings import Settings
from tierflow.streams.experiment.spec import load_experiment


def run_experiment_file(
    path: Path,
    out: Path,
    settings: Settings,
    keep_topics: bool = False,
    console: Console | None = None,
) -> Path:
    """Run the experiment file at ``path``, write its report into ``out``; the report's path.

    Raises:
        ExperimentError: the file is not a valid experiment.
    """
    console = console or Console(stderr=True)
    spec = load_experiment(path)
    out.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["tierflow", "experiment", str(path), "--out", str(out)])
    if spec.kind == "simulation":
        from rich.progress import Progress

        from tierflow.operators.planning.simulations import run_simulation_experiment

        with Progress(console=console) as bar:
            task = bar.add_task(spec.name, total=1.0)
            run_simulation_experiment(
                spec.raw,
                out,
                lambda label, done: bar.update(task, completed=done, description=label),
            )
        return out / "report.md"
    from tierflow.streams.experiment.report import write_report
    from tierflow.streams.experiment.run import run_pipeline_experiment

    results = run_pipeline_experiment(spec, out, settings, console, keep_topics)
    results["command"] = command
    results["python"] = sys.version.split()[0]
    return write_report(out, results, command)
