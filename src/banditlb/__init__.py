"""banditlb: a load balancer that learns which flaky upstreams to trust."""

__version__ = "0.1.0"
