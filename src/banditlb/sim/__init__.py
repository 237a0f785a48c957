"""Virtual-time simulator: the router and strategies against the fleet models, no sockets."""
