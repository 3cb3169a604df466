"""How the root app mounts a surface."""

from __future__ import annotations

import re

from starlette.routing import Mount
from starlette.types import ASGIApp

from omnirelay.surfaces.limits import SurfaceGuard


class SurfaceMount(Mount):
    """A mount that hands the surface every path under its prefix.

    Starlette's ``{path:path}`` is ``.*``, which stops at a newline: a path with an encoded
    ``%0A`` (``/api/users/1%0A``) would miss every mount and get the root app's bare
    ``{"detail": "Not Found"}`` instead of the surface's own error shape.

    Every surface sits behind the guard (``surfaces.limits``): body limits, JSON hygiene
    and rate-limit headers, in the surface's own shapes.
    """

    def __init__(self, path: str, app: ASGIApp) -> None:
        super().__init__(path, app=SurfaceGuard(app, path))
        self.path_regex = re.compile(self.path_regex.pattern, re.DOTALL)
