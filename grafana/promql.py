"""Small PromQL builders, so every dashboard query aggregates and windows the same way.

Conventions (the Prometheus set-up is described in ``grafana/README.md``):

* Every rate uses Grafana's ``$__rate_interval``: at least four scrapes, and wide enough at
  long time ranges that no sample falls between two steps. :func:`concrete` swaps it for a
  fixed window where the expression is evaluated outside Grafana.
* Several processes may export the same series (one per instance), so counters and
  histograms are summed ``by`` the labels a panel shows, never plotted raw.
* Gauges that state one shared fact (a camera's quality, a node's cores as the control agent
  sees it) are aggregated with ``max``: a second exporter repeats the fact, and summing
  would double it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from tierflow.grafana import variables

RATE_INTERVAL = "$__rate_interval"
"""Grafana's rate window variable; every ``rate`` below uses it."""

TIERFLOW_JOB = 'job="tierflow"'
"""Matcher for tierflow's scrape job: ``process_*`` series also come from other jobs
(Prometheus scrapes itself), tierflow's own metric names are unique to it."""


@functools.cache
def _labels() -> dict[str, frozenset[str]]:
    """The labels of every sample name tierflow exports (``_total``, ``_bucket``, ...)."""
    from tierflow.streams.metrics import METRICS  # the generator is its only reader

    table: dict[str, frozenset[str]] = {}
    for metric in METRICS:
        labels = frozenset(metric._labelnames)
        for family in metric.describe():
            for suffix in ("", "_total", "_bucket", "_sum", "_count"):
                table[family.name + suffix] = labels
    return table


def selector(metric: str, matchers: str = "") -> str:
    """``metric{filters, matchers}``: the dashboard variables' filters, then ``matchers``.

    ``prefix`` is a scrape target label, so every series has it (or matches "All" without
    it); ``source`` and ``quality`` filter the metrics that carry those labels.
    """
    own = _labels().get(metric, frozenset())
    filters = [variables.matcher(f) for f in variables.FILTERS if f == "prefix" or f in own]
    return f"{metric}{{{', '.join([*filters, matchers] if matchers else filters)}}}"


def rate(metric: str, matchers: str = "") -> str:
    """Per-second rate of a counter over the dashboard's rate window."""
    return f"rate({selector(metric, matchers)}[{RATE_INTERVAL}])"


def aggregate(op: str, by: Sequence[str], expr: str) -> str:
    """``op by (labels) (expr)``; ``op (expr)`` when ``by`` is empty (one series)."""
    return f"{op} by ({', '.join(by)}) ({expr})" if by else f"{op}({expr})"


def sum_rate(metric: str, by: Sequence[str] = (), matchers: str = "") -> str:
    """A counter's rate summed over instances, kept apart by ``by``."""
    return aggregate("sum", by, rate(metric, matchers))


def quantile(q: float, histogram: str, by: Sequence[str] = (), matchers: str = "") -> str:
    """The ``q`` quantile of a histogram over the rate window, per ``by``.

    Args:
        q: the quantile, 0..1.
        histogram: the histogram's base name (without ``_bucket``).
        by: labels to keep apart (``le`` is added).
        matchers: label matchers applied to the buckets.
    """
    buckets = sum_rate(f"{histogram}_bucket", ("le", *by), matchers)
    return f"histogram_quantile({q}, {buckets})"


def mean(histogram: str, by: Sequence[str] = (), matchers: str = "") -> str:
    """Mean observation of a histogram over the rate window: rate of the sum / rate of the count."""
    return (
        f"{sum_rate(f'{histogram}_sum', by, matchers)}"
        f" / {sum_rate(f'{histogram}_count', by, matchers)}"
    )


def own_labels(metric: str, labels: Sequence[str], matchers: str = "") -> str:
    """``metric`` with its own values of ``labels``, whatever the scrape's ``honor_labels``.

    The control agent exports facts about other services and nodes (``node``, ``tier``,
    ``stage`` labels) that clash with the scrape's target labels of the same names. With
    ``honor_labels: true`` the exported values win; with the default, Prometheus keeps the
    target's values and renames the exported ones to ``exported_<label>``. Copying
    ``exported_<label>`` back when it is set gives the exported values either way; the
    ``(.+)`` regex leaves series without ``exported_<label>`` untouched.
    """
    expr = selector(metric, matchers)
    for label in labels:
        expr = f'label_replace({expr}, "{label}", "$1", "exported_{label}", "(.+)")'
    return expr


def or_zero(expr: str, label: str, value: str = "none") -> str:
    """``expr``, or one zero series labelled ``label=value`` while ``expr`` has no series.

    For rare events (drops, deadletters): the panel shows a flat, named zero instead of
    "No data", which would look like a broken query. ``or on()`` adds the zero only when
    ``expr`` returns nothing at all.
    """
    return f'{expr} or on() label_replace(vector(0), "{label}", "{value}", "", "")'


def concrete(expr: str, rate_interval: str) -> str:
    """``expr`` with Grafana's variables replaced, to evaluate it through Prometheus's API.

    The filter variables become "All" (:data:`tierflow.grafana.variables.MATCH_ALL`).

    Args:
        expr: a dashboard expression.
        rate_interval: the window ``$__rate_interval`` becomes (e.g. ``"30s"``).
    """
    return variables.concrete(expr.replace(RATE_INTERVAL, rate_interval))
