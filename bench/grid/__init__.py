"""Robustness grid: every strategy on every limiter class x arrival mode (simulated), and
`auto` against nginx and HAProxy live on a subset of those cells."""
