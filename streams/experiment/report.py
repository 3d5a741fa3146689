"""An experiment's report: one table per question, plots, and the results as JSON.

Pure: it reads the per-frame rows and ``tierflow up`` summaries of each configuration and
writes ``report.md``, ``results.json`` and PNGs (latency CDF, processed frames/s and quality
over time, F1 per quality, makespan). Times are seconds from the configuration's first
frame sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tierflow.operators.reporting import figure, markdown_table, save

BIN_S = 1.0
"""Width of the time bins of the over-time plots, seconds."""


def load_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``frames.jsonl``."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def frame_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows that describe a frame once, the first per (source, sequence, capture time).

    Records of frames whose headers were unreadable (sequence -1, no capture time) are
    counted in the summary's deadletters but have no time to place them at.
    """
    seen: set[tuple[str, int, int]] = set()
    kept = []
    for row in rows:
        key = (row["source"], row["sequence"], row["capture_ns"])
        if row["sequence"] < 0 or row["capture_ns"] <= 0 or key in seen:
            continue
        seen.add(key)
        kept.append(row)
    return kept


def frame_stats(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Makespan, rates and the time series of one configuration's frame rows.

    ``makespan_s`` is the seed paper's metric: from the first frame sent (its capture) to
    the last frame processed (capture + end-to-end latency), seconds.
    """
    rows = frame_rows(rows)
    sent = [r for r in rows if r["outcome"] != "sampled"]
    processed = [r for r in rows if r["outcome"] == "processed"]
    if not sent:
        return {"makespan_s": None, "latencies_s": [], "fps_series": [], "quality_series": []}
    start_s = min(r["capture_ns"] for r in sent) / 1e9
    done_s = np.array([r["capture_ns"] / 1e9 + r["latency_s"] - start_s for r in processed])
    makespan = float(done_s.max()) if done_s.size else None
    edges = np.arange(0.0, (makespan or 0.0) + BIN_S, BIN_S)
    counts = np.histogram(done_s, bins=edges)[0] if edges.size > 1 else np.zeros(0)
    sent_at = np.array([r["capture_ns"] / 1e9 - start_s for r in sent])
    qualities = np.array([r["quality"] for r in sent], float)
    quality_series = []
    for lo in np.arange(0.0, float(sent_at.max()) + BIN_S, BIN_S):
        inside = (sent_at >= lo) & (sent_at < lo + BIN_S)
        if inside.any():
            quality_series.append((float(lo), float(qualities[inside].mean())))
    return {
        "makespan_s": makespan,
        "latencies_s": sorted(float(r["latency_s"]) for r in processed),
        "fps_series": [(float(e), float(c) / BIN_S) for e, c in zip(edges, counts, strict=False)],
        "quality_series": quality_series,
        "mean_quality_sent": float(qualities.mean()),
    }


def _row(name: str, summary: Mapping[str, Any], stats: Mapping[str, Any]) -> list[object]:
    totals = summary["totals"]
    dropped = sum(totals["dropped"].values()) + sum(totals["camera_dropped"].values())
    refused = sum(source.get("refused_ticks", 0) for source in summary["sources"].values())
    return [
        name,
        totals["captured"],
        refused,
        totals["sampled"],
        totals["processed"],
        dropped,
        totals["deadlettered"],
        totals["unaccounted"],
        totals["fps_out"],
        totals["latency_p50_s"],
        totals["latency_p99_s"],
        totals["f1"],
        totals["f1_carry_forward"],
        stats.get("mean_quality_sent"),
        stats["makespan_s"],
    ]


HEADERS = [
    "config", "captured", "refused", "sampled", "processed", "dropped", "deadletter", "unaccounted",
    "fps out", "p50 s", "p99 s", "F1 analysed", "F1 all frames", "mean px sent", "makespan s",
]  # fmt: skip


def _plots(
    out: Path, stats: Mapping[str, Mapping[str, Any]], summaries: Mapping[str, Any]
) -> list[Path]:
    made: list[Path] = []
    fig, ax = figure("End-to-end latency, processed frames", "latency (s)", "fraction of frames")
    for name, s in stats.items():
        values = s["latencies_s"]
        if values:
            ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", label=name)
    made.append(save(fig, out / "latency_cdf.png"))
    fig, ax = figure("Processed frames per second", "time since first frame sent (s)", "frames/s")
    for name, s in stats.items():
        if s["fps_series"]:
            t, v = zip(*s["fps_series"], strict=True)
            ax.plot(t, v, label=name)
    made.append(save(fig, out / "fps_over_time.png"))
    fig, ax = figure(
        "Quality sent (mean over sources)", "time since first frame sent (s)", "side (px)"
    )
    for name, s in stats.items():
        if s["quality_series"]:
            t, v = zip(*s["quality_series"], strict=True)
            ax.step(t, v, where="post", label=name)
    made.append(save(fig, out / "quality_over_time.png"))
    fig, ax = figure("F1 per quality (analysed frames) and overall", "quality", "F1")
    names = list(summaries)
    qualities = sorted({int(q) for s in summaries.values() for q in s["totals"]["by_quality"]})
    labels = [*map(str, qualities), "all frames"]
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        totals = summaries[name]["totals"]
        values = [totals["by_quality"].get(str(q), {}).get("f1") for q in qualities]
        values.append(totals["f1_carry_forward"])
        xs = np.arange(len(labels)) + i * width
        ax.bar(xs, [v if v is not None else 0.0 for v in values], width, label=name)
    ax.set_xticks(np.arange(len(labels)) + width * (len(names) - 1) / 2, labels)
    ax.set_ylim(0, 1)
    made.append(save(fig, out / "f1_per_quality.png"))
    fig, ax = figure("Makespan: first frame sent to last processed", "configuration", "seconds")
    spans = [(n, s["makespan_s"]) for n, s in stats.items() if s["makespan_s"] is not None]
    if spans:
        ax.bar([n for n, _ in spans], [v for _, v in spans])
    made.append(save(fig, out / "makespan.png"))
    return made


def _failures(failed: Mapping[str, str]) -> list[str]:
    if not failed:
        return []
    lines = ["## Configurations that did not finish", ""]
    lines += [f"- `{name}`: {why}" for name, why in failed.items()]
    return [*lines, ""]


def write_report(out: Path, results: dict[str, Any], command: str) -> Path:
    """Write ``report.md``, ``results.json`` and the plots into ``out``; the report's path."""
    configs = results["configs"]
    summaries = {name: c["summary"] for name, c in configs.items()}
    stats = {name: frame_stats(load_rows(Path(c["frames_file"]))) for name, c in configs.items()}
    for name, s in stats.items():
        totals = summaries[name]["totals"]
        if not summaries[name]["all_accounted"] or totals["unaccounted"]:
            s["makespan_s"] = None  # frames without an outcome: the run never finished
        configs[name]["makespan_s"] = s["makespan_s"]
        configs[name]["mean_quality_sent"] = s.get("mean_quality_sent")
    plots = _plots(out, stats, summaries)
    rec = results["recording"]
    lines = [
        f"# Experiment `{results['experiment']}`",
        "",
        results["description"],
        "",
        f"Made with `{command}`.",
        "",
        f"Input: recording `{rec['path']}` (sha256 `{rec['sha256'][:16]}...`), "
        f"{rec['frames']} frames of {len(rec['sources'])} sources over {rec['span_s']:g} s; "
        "every configuration replayed exactly these frames under its own topic prefix.",
        "",
        "## Outcomes",
        "",
        markdown_table(HEADERS, [_row(n, summaries[n], stats[n]) for n in configs]),
        "`captured` + `refused` is every recorded frame offered: `refused` ones came while "
        "the controller refused their source (Algorithm 1, steps 7-8) and were not captured. "
        "`F1 analysed` is over the frames the detector saw; `F1 all frames` scores every "
        "captured frame, a frame not analysed taking the detections of its source's last "
        "analysed one (carry-forward). Makespan: first frame sent to last frame processed "
        "(none when frames were left without an outcome at the end of the drain).",
        "",
        "## Configurations",
        "",
        markdown_table(
            ["config", "mode", "control", "assigned once", "sources", "prefix", "settings"],
            [
                [
                    n,
                    c["mode"],
                    c["control"],
                    f"`{json.dumps(c.get('assign') or {})}`",
                    ", ".join(c.get("sources") or ["all"]),
                    f"`{c['prefix']}`",
                    f"`{json.dumps(c['settings'])}`",
                ]
                for n, c in configs.items()
            ],
        ),
        *_failures(results.get("failed", {})),
        "## Plots",
        "",
        *[f"![{p.stem}]({p.name})" for p in plots],
        "",
    ]
    report = out / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    return report
