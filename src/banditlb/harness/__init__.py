"""The live harness: load by an arrival process, the run matrix against fleet + balancer,
the result table."""

from banditlb.harness.control import HarnessError
from banditlb.harness.live_runs import MatrixConfig, RunResult, iter_runs, run_matrix
from banditlb.harness.loadgen import NO_ANSWER, Fired, client_latency, fire, make_ids

__all__ = ["NO_ANSWER", "Fired", "HarnessError", "MatrixConfig", "RunResult", "client_latency",
           "fire", "iter_runs", "make_ids", "run_matrix"]
