"""Who may call the admin endpoints: anyone on a loopback-only balancer, else token holders."""

from __future__ import annotations

import hmac
import ipaddress

TOKEN_ENV = "BANDITLB_ADMIN_TOKEN"


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname or wildcard may reach other machines


def bearer_ok(authorization: str | None, token: str) -> bool:
    """Constant-time check of an `Authorization: Bearer <token>` header."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


def admin_denial(bind_host: str, token: str | None, authorization: str | None) -> str | None:
    """None when the caller may use admin endpoints, else the reason it may not."""
    if is_loopback(bind_host):
        return None
    if not token:
        return (f"admin endpoints are disabled: the balancer listens on {bind_host}, "
                f"so start it with --admin-token or {TOKEN_ENV}")
    if not bearer_ok(authorization, token):
        return "admin endpoints need the header 'Authorization: Bearer <admin token>'"
    return None
