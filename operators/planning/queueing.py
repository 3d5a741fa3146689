"""Waiting at a resource under load: the load dependence of eq. 1's ``T_E = Load/C``.

Houmani et al. (SBAC-PAD 2021) §IV-A, eq. 1: a microservice's execution time is
``T_E = Load/C``; under load a frame also waits for the frames ahead of it, so its time
grows with the load. :class:`QueueCurve` holds the mean number of frames waiting at a
resource (``L_q``) as a convex piecewise-linear function of its utilisation
(Pollaczek-Khinchine by default: M/M/1 for ``cv2 = 1``, M/D/1 for ``cv2 = 0``); by Little's
law a frame waits ``L_q / lambda`` seconds. That total is what the quality-assignment MILP
can hold exactly (``tierflow.operators.planning.quality``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tierflow.operators.planning.errors import ModelError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class QueueCurve:
    """Mean number of frames waiting at a resource, ``L_q``, against its utilisation.

    Convex and piecewise linear (interpolated between breakpoints, exact at them), so a MILP
    represents it exactly as the maximum of its pieces. A frame then waits ``L_q / lambda``
    seconds (Little's law) — for M/M/1 that equals ``L / C``, the frames ahead of it divided
    by the service rate: eq. 1's ``T_E = Load/C`` with ``Load`` the work ahead. Utilisation
    beyond the last breakpoint is not allowed (the resource's capacity).

    Attributes:
        utilisation: breakpoints, increasing, the first 0.
        waiting_frames: ``L_q`` at each breakpoint (frames), the first 0, convex.
    """

    utilisation: tuple[float, ...]
    waiting_frames: tuple[float, ...]

    def __post_init__(self) -> None:
        u = np.asarray(self.utilisation, dtype=np.float64)
        q = np.asarray(self.waiting_frames, dtype=np.float64)
        problem = ""
        if u.shape != q.shape or u.size < 2:
            problem = "needs at least two breakpoints and one value per breakpoint"
        elif u[0] != 0.0 or q[0] != 0.0:
            problem = "must start at (0, 0): nothing waits at an idle resource"
        elif np.any(np.diff(u) <= 0) or not np.all(np.isfinite(q)):
            problem = "breakpoints must increase and values be finite"
        else:
            slopes = np.diff(q) / np.diff(u)
            if slopes[0] < 0 or np.any(np.diff(slopes) < -1e-9 * (1 + np.abs(slopes[1:]))):
                problem = "must be non-decreasing and convex (slopes non-decreasing)"
        if problem:
            msg = f"QueueCurve{self.utilisation, self.waiting_frames}: {problem}"
            raise ModelError(msg)

    @classmethod
    def pollaczek_khinchine(
        cls, cv2: float = 1.0, max_utilisation: float = 0.9, pieces: int = 10
    ) -> QueueCurve:
        """``L_q = rho^2 (1 + cv2) / (2 (1 - rho))`` (M/G/1) sampled on ``[0, max_utilisation]``.

        Breakpoints are denser towards ``max_utilisation`` where the curve bends most, plus
        one near 0 (``pieces + 1`` pieces in all). The interpolation lies above the true
        convex curve (a conservative estimate); near idle a frame is charged about
        ``slope_0 / C``, a few per cent of its service time.

        Args:
            cv2: squared coefficient of variation of the processing time (1: M/M/1,
                0: deterministic M/D/1).
            max_utilisation: highest utilisation allowed (< 1), the capacity margin.
            pieces: number of linear pieces.
        """
        if not 0.0 < max_utilisation < 1.0 or pieces < 1 or cv2 < 0:
            msg = (
                "QueueCurve.pollaczek_khinchine: needs 0 < max_utilisation < 1, pieces >= 1, "
                f"cv2 >= 0; got {max_utilisation}, {pieces}, {cv2}"
            )
            raise ModelError(msg)
        k = np.arange(pieces + 1, dtype=np.float64) / pieces
        rho = max_utilisation * (1.0 - (1.0 - k) ** 2)
        # one more breakpoint near 0: the first chord sets the wait of a nearly idle
        # resource (L_q / lambda -> slope / C), which a long chord would overstate
        rho = np.insert(rho, 1, rho[1] / 4) if pieces > 1 else rho
        lq = rho * rho * (1.0 + cv2) / (2.0 * (1.0 - rho))
        return cls(tuple(float(x) for x in rho), tuple(float(x) for x in lq))

    @classmethod
    def no_wait(cls, max_utilisation: float = 1.0) -> QueueCurve:
        """A resource whose queueing is ignored: only its capacity counts."""
        return cls((0.0, max_utilisation), (0.0, 0.0))

    @property
    def max_utilisation(self) -> float:
        """The capacity limit: the last breakpoint."""
        return self.utilisation[-1]

    def waiting(self, utilisation: float) -> float:
        """``L_q`` in frames at ``utilisation``; inf beyond the capacity limit."""
        return float(self.waiting_array(np.asarray([utilisation], dtype=np.float64))[0])

    def waiting_array(self, utilisation: FloatArray, tol: float = 1e-9) -> FloatArray:
        """Vectorised :meth:`waiting` (frames), inf where utilisation exceeds the limit."""
        values = np.interp(utilisation, self.utilisation, self.waiting_frames)
        return np.where(utilisation > self.max_utilisation + tol, np.inf, values)

    def wait_s(self, utilisation: float, arrival_fps: float) -> float:
        """Mean waiting time of one frame, ``L_q / lambda`` (Little's law), seconds."""
        return self.waiting(utilisation) / arrival_fps if arrival_fps > 0 else 0.0

    def pieces(self) -> tuple[FloatArray, FloatArray]:
        """``(slopes, intercepts)`` of the linear pieces: ``L_q(u) = max_k slope_k*u + icpt_k``."""
        u = np.asarray(self.utilisation, dtype=np.float64)
        q = np.asarray(self.waiting_frames, dtype=np.float64)
        slopes = np.diff(q) / np.diff(u)
        return slopes, q[:-1] - slopes * u[:-1]
