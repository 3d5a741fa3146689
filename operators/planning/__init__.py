"""The control plane's mathematics: models (eq. 1-6), HiGHS programs, placement, the loop.

- :mod:`.network` (eq. 2), :mod:`.queueing` (eq. 1 under load), :mod:`.accuracy_model`
  (eq. 4 and eq. 6's long-term floor), :mod:`.errors`: the models;
- :mod:`.highs`: every HiGHS helper and the one :class:`~.highs.SolveStatus`;
- :mod:`.quality`: the quality assignment (Algorithm 1); :mod:`.placement`: where each
  service runs (Algorithms 2-4, the thesis program, AVEC);
- :mod:`.workflow`: the submitted workflow and its TOML loader; :mod:`.scenario`: one slot
  offline, for ``tierflow plan``;
- :mod:`.controller`: the control loop that turns observations into decisions.
"""
