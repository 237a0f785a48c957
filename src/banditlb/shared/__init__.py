"""Replicas of one pool learning together: the evidence they share and its Redis link."""
