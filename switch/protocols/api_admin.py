"""``POST /v1/reload`` (admin): re-read and apply the configuration (DESIGN §8).

The same reload as SIGHUP (:mod:`switch.reload`). 200 with what changed when applied;
400 ``invalid_config`` when refused, ``error.message`` being the lines ``switchctl config
check`` prints (one per error, joined by newlines) and ``error.lines`` the same as a
list; 503 when the audit cannot record the reload (nothing applied then).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred

from switch.protocols.api import ADMIN, Api, Call, Response, Route
from switch.reload import ReloadResult
from switch.sessions import Session

ReloadFn = Callable[[str, Session | None], Deferred[ReloadResult]]


class AdminRoutes:
    """The admin routes that act on the daemon itself."""

    def __init__(self, api: Api, reload: ReloadFn) -> None:
        self._api = api
        self._reload = reload

    def install(self) -> None:
        self._api.router.add(
            Route(
                "POST",
                "/v1/reload",
                self.reload,
                roles=ADMIN,
                audited=True,
                summary="Re-read and apply the configuration files",
            )
        )

    async def reload(self, call: Call) -> Response:
        result = await self._reload("api", call.require_session())
        if not result.applied:
            body = {
                "error": {
                    "code": "invalid_config",
                    "message": "\n".join(result.errors),
                    "lines": list(result.errors),
                }
            }
            return Response(400, body)
        return Response(200, result.summary())
