"""The dashboard: live view, stored runs, comparisons and a Thompson-sampling playground."""

from banditlb.dashboard.routes import dashboard_routes

__all__ = ["dashboard_routes"]
