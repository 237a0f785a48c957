"""Virtual-time simulator: the router and policies against the fleet models, no sockets."""
