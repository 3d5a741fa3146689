"""Quality assignment: Algorithm 1 of Houmani et al. (SBAC-PAD 2021) for all sources at once.

Each source gets a quality, a frame rate (when options offer lower rates, issue 9) and a
pipeline serving it so that the estimated mean latency over analysed frames (eq. 1-3) is
least, or the utility ``U = a - Theta*T`` (eq. 5) greatest, subject to the accuracy
constraint (eq. 4, 6: mean accuracy >= ``a_min``, default 0.5), each pipeline's compute
capacity and each link's bandwidth; or, with ``Objective.MAKESPAN`` (§VII's metric), so that
the load offered over a run of ``duration_s`` drains soonest (``T_E = Load/C`` uncapped: the
backlog may grow). Policies, by name (:func:`assign`):

* ``milp`` — a mixed-integer program solved by HiGHS (highspy).
* ``exact`` — Algorithm 1 as written: enumerate the quality distributions ``B``, keep those
  with accuracy >= ``a_min`` (steps 2-6), refuse when none (steps 7-8), take the fastest
  (step 9) unless the preference rule prefers another (steps 10-12). Small instances only.
* ``all-max`` — the paper's "no adaptation" baseline: every source at its highest quality
  and native rate, pipelines chosen by the same MILP.

Every policy scores with the same model, so they are comparable. The modules, in the order
a solve goes through them:

* :mod:`.problem` — what is asked and answered (:class:`Problem`, :class:`AssignmentResult`)
  and the reading of Algorithm 1's preference rule (steps 10-12, :class:`PreferenceRule`);
* :mod:`.topology` — options, pipelines and links from a tree of nodes (eq. 2's routes);
* :mod:`.compiled` — the problem as classes x options and resources, and the one model of
  eq. 1-5 every policy scores with;
* :mod:`.milp` — the ``milp`` policy: tiny instances enumerated, others as a program, and
  the preference rule as its second stage;
* :mod:`.program` — the program in HiGHS and how it is solved fast, with the local search
  of :mod:`.moves`;
* :mod:`.ratio` — frame rates make eq. 3's mean a ratio: Dinkelbach / fixed-point steps,
  and :mod:`.frontier`, which settles eq. 5's utility on the accuracy-latency frontier;
* :mod:`.makespan` — the makespan objective's program (an epigraph of the max over
  resources of ``T_E = Load/C``);
* :mod:`.exact` — Algorithm 1 by enumeration;
* :mod:`.driver` — :func:`assign`: policies by name, refusal (steps 7-8), rotation (§V).

Solver outcomes are values (:class:`~tierflow.operators.planning.highs.SolveStatus`); only
programming errors (unknown policy name, inconsistent input) raise, and they raise
:class:`SolverError`.
"""

from tierflow.operators.planning.highs import SolveStatus
from tierflow.operators.planning.quality.driver import POLICY_NAMES, assign
from tierflow.operators.planning.quality.exact import EXACT_LIMIT, distribution_count
from tierflow.operators.planning.quality.problem import (
    AssignmentResult,
    Choice,
    LatencyMean,
    Link,
    Objective,
    Option,
    Pipeline,
    PreferenceRule,
    Problem,
    Refusal,
    Rotation,
    SolverError,
    Source,
    SourceAssignment,
)
from tierflow.operators.planning.quality.topology import Deployment, options_for_topology

__all__ = [
    "EXACT_LIMIT",
    "POLICY_NAMES",
    "AssignmentResult",
    "Choice",
    "Deployment",
    "LatencyMean",
    "Link",
    "Objective",
    "Option",
    "Pipeline",
    "PreferenceRule",
    "Problem",
    "Refusal",
    "Rotation",
    "SolveStatus",
    "SolverError",
    "Source",
    "SourceAssignment",
    "assign",
    "distribution_count",
    "options_for_topology",
]
