"""Moved to ``omnirelay.net`` (one guard for every sink); kept so older imports work."""

from omnirelay.net.connectors import GuardedConnector, GuardedResolver
from omnirelay.net.ssrf import (
    IPAddress,
    IPNetwork,
    Target,
    UnsafeURL,
    allowed_networks,
    check_address,
    parse_networks,
    precheck,
    resolve,
    resolve_async,
    validate_url,
)

__all__ = [
    "GuardedConnector",
    "GuardedResolver",
    "IPAddress",
    "IPNetwork",
    "Target",
    "UnsafeURL",
    "allowed_networks",
    "check_address",
    "parse_networks",
    "precheck",
    "resolve",
    "resolve_async",
    "validate_url",
]
