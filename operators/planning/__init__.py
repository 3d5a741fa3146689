"""The control plane's mathematics: models (eq. 1-6), HiGHS programs, placement, the loop."""
