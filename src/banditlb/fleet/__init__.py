"""The simulated flaky fleet: pure models (shared with the simulator) and its servers."""
