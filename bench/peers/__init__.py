"""Peer benchmark: banditlb's `auto` against nginx and HAProxy in front of the same fleet."""
