"""The live harness: open-loop load, the run matrix against fleet + balancer, the result table."""

from banditlb.harness.control import HarnessError
from banditlb.harness.live_runs import MatrixConfig, RunResult, iter_runs, run_matrix
from banditlb.harness.loadgen import NO_ANSWER, fire_open_loop, make_ids

__all__ = ["NO_ANSWER", "HarnessError", "MatrixConfig", "RunResult", "fire_open_loop",
           "iter_runs", "make_ids", "run_matrix"]
