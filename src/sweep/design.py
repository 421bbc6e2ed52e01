"""Design rules a sweep must keep for its runs to measure a scaling law, in one place: `config.py`
(checking a grid before it trains) and `laws/` (flagging points that break a rule) both read them.
Plain constants, so that importing this module pulls in nothing.
"""

# Fewest optimizer steps for a run's final loss to count as a point of the law. A run with fewer is
# still limited by optimisation rather than by its size N and tokens D: its loss sits above the law
# and bends the fit (Choshen et al. 2024, "A Hitchhiker's Guide to Scaling Law Estimation",
# arXiv 2410.11840, leave the early part of training out of their fits for the same reason).
# Measured on the quickstart grid (README, "Designing a sweep"): with half the steps for the same
# tokens, runs of 244-732 steps ended 2.5-5.4% higher, runs of 1,270 steps 0.2-2.5%, of 2,246 or
# more within 2%. `sweep fit` warns about points below this and `--min-steps K` leaves them out;
# leaving the quickstart's shortest runs out did not make its held-out predictions better.
MIN_STEPS = 1000
