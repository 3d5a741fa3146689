"""Local search for the ``milp`` policy: one source moved at a time between its options.

It polishes the integer point HiGHS finds in the box of the LP solution (:mod:`.milp`) on
the program's own linear objective and the waiting curves of :mod:`.compiled` (eq. 1-5 of
Houmani et al., SBAC-PAD 2021), keeping every constraint: one quality, pipeline and rate per
source, eq. 4 + 6's accuracy floor, the capacities and the preference rule's latency window.
"""

from __future__ import annotations

import time

import numpy as np

from tierflow.operators.planning.quality.compiled import TOL, Compiled, FloatArray, IntArray


class Moves:
    """Local search: move one source at a time between options of its class.

    Best improvement over every (from, to) pair of columns of a class, vectorised: a move
    changes the utilisation only of the resources either column touches, so each pair
    carries those (padded to a fixed width, with a dummy resource ``R`` of no cost) and the
    change of ``L_q`` is the max-of-pieces form of the convex curves on them.
    """

    def __init__(self, comp: Compiled) -> None:
        n_r = len(comp.resources)
        cols_of = [np.flatnonzero(comp.var_class == c) for c in range(len(comp.classes))]
        pairs = [(a, b) for cols in cols_of for a in cols for b in cols if a != b]
        self.src = np.asarray([a for a, _ in pairs], dtype=np.int64)
        self.dst = np.asarray([b for _, b in pairs], dtype=np.int64)
        touched = comp.load > 0  # (R, V)
        width = max(1, int(touched.sum(axis=0).max(initial=0)))
        per_col = np.full((len(comp.var_option), width), n_r, dtype=np.int64)
        for v in range(len(comp.var_option)):
            rs = np.flatnonzero(touched[:, v])
            per_col[v, : rs.size] = rs
        both = np.sort(np.concatenate([per_col[self.src], per_col[self.dst]], axis=1), axis=1)
        both[:, 1:][both[:, 1:] == both[:, :-1]] = n_r  # a resource both columns touch: once
        self.res = both
        load = np.vstack([comp.load, np.zeros((1, comp.load.shape[1]))])
        self.dload = load[both, self.dst[:, None]] - load[both, self.src[:, None]]
        self.load = load
        self.dacc = comp.acc[self.dst] - comp.acc[self.src]
        width_k = max(len(q.utilisation) - 1 for _, _, q in comp.resources) if n_r else 1
        self.slopes = np.zeros((n_r + 1, width_k))
        self.icpts = np.full((n_r + 1, width_k), -np.inf)
        self.icpts[n_r, 0] = 0.0
        self.cap = np.full(n_r + 1, np.inf)
        for r, (_, _, curve) in enumerate(comp.resources):
            slopes, icpts = curve.pieces()
            self.slopes[r, : slopes.size] = slopes
            self.icpts[r, : icpts.size] = icpts
            self.cap[r] = curve.max_utilisation + TOL
        self.acc = comp.acc
        self.sources = max(comp.sources, 1)
        self.fps, self.frame_s = comp.fps, comp.fps * comp.base_s  # D and N per column
        self.dfps = self.fps[self.dst] - self.fps[self.src]
        self.dframe_s = self.frame_s[self.dst] - self.frame_s[self.src]
        self.queued = np.zeros(n_r + 1, dtype=np.bool_)
        self.queued[:n_r] = [max(q.waiting_frames) > 0 for _, _, q in comp.resources]

    def _q(self, res: IntArray, u: FloatArray) -> FloatArray:
        pieces = self.slopes[res] * u[..., None] + self.icpts[res]
        return np.asarray(pieces.max(axis=-1), dtype=np.float64)

    def improve(
        self,
        x: IntArray,
        cost_x: FloatArray,
        cost_r: FloatArray,
        floor_sum: float,
        latency: tuple[FloatArray, float],
        deadline: float,
        exact: tuple[float | None] | None = None,
        moves: int | None = None,
        waits: FloatArray | None = None,
    ) -> IntArray:
        """Apply improving moves that keep every constraint until none is left (or time).

        Args:
            x: counts to start from (feasible).
            cost_x: the program's objective per column.
            cost_r: its objective per frame waiting at each resource (+ the dummy).
            floor_sum: eq. 4 + 6: least sum of accuracies.
            latency: the preference rule's latency row: coefficient per column (the
                waiting enters with 1e3) and its upper bound (inf: no such row).
            deadline: ``time.perf_counter()`` value to stop at.
            exact: score moves by the true objective instead of the program's, ``(None,)``
                for eq. 3's mean ``N/D`` over analysed frames, ``(Theta,)`` for eq. 5's
                utility (``Theta`` per second); ``cost_x`` and ``cost_r`` are then unused.
            moves: most moves (None: four per source, plus ten).
            waits: weight of each resource's frames waiting in the latency row (+ the
                dummy); None: 1 each (eq. 3 over frames).
        """
        x = x.copy()
        if self.src.size == 0:
            return x
        lat_x, latency_cap = latency
        dcost = cost_x[self.dst] - cost_x[self.src]
        dlat = lat_x[self.dst] - lat_x[self.src]
        u = self.load @ x.astype(np.float64)
        acc_sum = float(self.acc @ x)
        all_r = np.arange(u.size)
        wait_w = np.ones(u.size) if waits is None else waits
        waiting = float(self._q(all_r, u)[self.queued].sum())
        level = float(lat_x @ x) + 1e3 * float((self._q(all_r, u) * wait_w)[self.queued].sum())
        frame_s, frames = float(self.frame_s @ x) + waiting, float(self.fps @ x)  # N, D
        for _ in range(4 * int(x.sum()) + 10 if moves is None else moves):
            if time.perf_counter() >= deadline:
                break
            cand = np.flatnonzero((x[self.src] > 0) & (acc_sum + self.dacc >= floor_sum))
            res = self.res[cand]
            u_new = u[res] + self.dload[cand]
            d_q = self._q(res, u_new) - self._q(res, u[res])
            d_wait = np.sum(np.where(self.queued[res], d_q, 0.0), axis=1)
            d_lat = dlat[cand] + 1e3 * np.sum(
                np.where(self.queued[res], d_q * wait_w[res], 0.0), axis=1
            )
            d_n, d_d = self.dframe_s[cand] + d_wait, self.dfps[cand]
            if exact is None:
                delta = dcost[cand] + np.sum(cost_r[res] * d_q, axis=1)
                scale = max(1.0, abs(float(cost_x @ x)))
            else:  # the change of N/D (s); of Theta*N/D - a for the utility
                mean = frame_s / frames
                delta = (frame_s + d_n) / np.maximum(frames + d_d, 1e-300) - mean
                scale = max(1e-3, mean)
                if exact[0] is not None:
                    delta = exact[0] * delta - self.dacc[cand] / self.sources
                    scale = 1e-3
            ok = np.all(u_new <= self.cap[res], axis=1) & (level + d_lat <= latency_cap)
            ok &= delta < -1e-9 * scale
            if not ok.any():
                break
            best = int(np.argmin(np.where(ok, delta, np.inf)))
            i = cand[best]
            x[self.src[i]] -= 1
            x[self.dst[i]] += 1
            u[res[best]] = u_new[best]
            u[-1] = 0.0
            acc_sum += float(self.dacc[i])
            level += float(d_lat[best])
            frame_s, frames = frame_s + float(d_n[best]), frames + float(d_d[best])
        return x
