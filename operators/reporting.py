"""Report building blocks shared by every experiment: Markdown tables and PNG figures.

Pure and broker-free: experiments hand in numbers, these functions write text and images.
Figures use matplotlib's non-interactive Agg backend (no display on a server or in CI).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def cell(value: object, digits: int = 3) -> str:
    """One table cell: floats rounded to ``digits`` significant figures, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table (header, rule, one line per row)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    """A 6.4 x 4 inch figure with one titled, labelled, gridded axes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100, layout="tight")
    axes = fig.add_subplot()
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    return fig, axes


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (folders created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = fig.axes
    if any(a.get_legend_handles_labels()[0] for a in axes):
        for a in axes:
            if a.get_legend_handles_labels()[0]:
                a.legend(fontsize="small")
    fig.savefig(path, format="png")
    return path
