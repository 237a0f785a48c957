"""The balancer service: an ASGI app that routes each id through a learning strategy."""
