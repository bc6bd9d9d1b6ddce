"""The client API: HTTP/1.1 + JSON on a UNIX socket (DESIGN §5).

twisted.web does the HTTP parsing; this module adds what the design asks of it:

- a **route table** (:class:`Router`) of ``(method, template, handler, roles, ...)``
  that later issues extend with ``api.router.add(Route(...))``, and that the OpenAPI
  agreement test enumerates;
- hostile-input limits in the channel (:class:`ApiChannel`): a body over ``max_body`` is
  refused with 413 from ``Content-Length`` before a byte of it is read, chunked bodies are
  capped while they arrive, a request that is not complete within ``client_timeout`` gets
  408 and the connection is closed, malformed HTTP gets a JSON 400: never a hung
  connection, never a traceback;
- uniform JSON errors ``{"error": {"code", "message", "field"?}}`` with the statuses of
  DESIGN §5, raised anywhere as :class:`ApiError`.

Handlers are ``async def handler(call: Call) -> Response``; the dispatcher checks route,
draining, bearer token and roles, media type and JSON body before calling them.
"""

from __future__ import annotations

import importlib.resources
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, Final
from urllib.parse import unquote

import structlog
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from switch.audit.interface import AuditSink, AuditUnavailable
from switch.config import Config
from switch.jsontext import compact, loads
from switch.sessions import (
    Clock,
    LogonForbidden,
    LogonRefused,
    OperatorLocked,
    Session,
    SessionError,
    SessionInvalid,
    SessionManager,
    iso_utc,
)

_log = structlog.get_logger("switch.api")

#: A ``twisted.web.server.Request``. Twisted leaves its methods unannotated, so under
#: ``mypy --strict`` every call would need an ignore; we name the type and take Any.
WebRequest = Any

MAX_BODY: Final = 64 * 1024
ADMIN: Final = frozenset({"admin"})
SUPERVISOR: Final = frozenset({"supervisor", "admin"})

_REASONS: Final = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    423: "Locked",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """Answer the request with ``status`` and a JSON error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


def bad_field(field: str, message: str) -> ApiError:
    """400 naming the offending field (``error.field``)."""
    return ApiError(400, "invalid_field", message, field=field)


def too_many(retry_after: float) -> ApiError:
    """429 with ``Retry-After`` (whole seconds, at least 1)."""
    seconds = max(1, int(-(-retry_after // 1)))
    return ApiError(429, "rate_limited", "too many requests", headers={"Retry-After": str(seconds)})


def error_bytes(status: int, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 error response that closes the connection (channel level)."""
    body = compact({"error": {"code": code, "message": message}})
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


# --------------------------------------------------------------------------- routing


@dataclass
class Call:
    """One request as a handler sees it."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: dict[str, Any] | None
    session: Session | None
    request: WebRequest

    def header(self, name: str) -> str | None:
        value = self.request.getHeader(name)
        return None if value is None else str(value)

    def require_session(self) -> Session:
        if self.session is None:
            raise ApiError(401, "unauthorized", "missing bearer token")
        return self.session


@dataclass(frozen=True)
class Response:
    """A handler's answer: JSON ``body`` (None: no body), or ``raw`` bytes as is."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    #: A long-lived response (Server-Sent Events): called with the request once the
    #: status and headers are set; it writes, and finishes the request, itself.
    stream: Callable[[WebRequest], None] | None = None


Handler = Callable[[Call], Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    """One row of the route table.

    ``template`` uses ``{name}`` for one path segment. ``roles``: the session needs any
    one of them (empty: any session). ``auth`` False: no token needed. ``body``: a JSON
    object body is required (415 / 400 otherwise). ``audited``: refused with 503 while
    the audit is failing. ``always``: still served while draining (liveness, docs).
    """

    method: str
    template: str
    handler: Handler
    auth: bool = True
    roles: frozenset[str] = frozenset()
    body: bool = False
    audited: bool = False
    always: bool = False
    summary: str = ""
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = []
        for piece in re.split(r"(\{[a-z_]+\})", self.template):
            if piece.startswith("{") and piece.endswith("}"):
                parts.append(f"(?P<{piece[1:-1]}>[^/]+)")
            else:
                parts.append(re.escape(piece))
        object.__setattr__(self, "pattern", re.compile("".join(parts)))


class Router:
    """The route table: ordered, first full match wins; 404 vs 405 decided here."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(self._routes)

    def add(self, route: Route) -> Route:
        for existing in self._routes:
            if existing.method == route.method and existing.template == route.template:
                raise ValueError(f"duplicate route {route.method} {route.template}")
        self._routes.append(route)
        return route

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed: list[str] = []
        for route in self._routes:
            m = route.pattern.fullmatch(path)
            if m is None:
                continue
            if route.method == method:
                return route, {k: unquote(v, errors="strict") for k, v in m.groupdict().items()}
            allowed.append(route.method)
        if allowed:
            raise ApiError(
                405,
                "method_not_allowed",
                f"method {method} not allowed here",
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise ApiError(404, "not_found", "no such resource")


# --------------------------------------------------------------------------- HTTP plumbing


class ApiChannel(HTTPChannel):
    """HTTPChannel with a body limit decided before reading and a whole-request deadline.

    Twisted's idle timeout restarts with every byte, so a client dribbling a byte a
    minute would hold a connection forever; the deadline here runs from the end of the
    previous request (or the connection) to the end of this one.
    """

    max_body: int = MAX_BODY
    request_deadline: float = 60.0
    _deadline: IDelayedCall | None = None
    _rejected: bool = False

    def connectionMade(self) -> None:
        super().connectionMade()  # type: ignore[no-untyped-call]
        site = getattr(self, "site", None)
        if isinstance(site, ApiSite):
            site.channels.add(self)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        if self.request_deadline:
            self._deadline = self.callLater(  # type: ignore[no-untyped-call]
                self.request_deadline, self._too_slow
            )

    def _disarm(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        self.reject(408, "timeout", "request not received in time")

    def reject(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` at once and close: the rest of the request is never read."""
        if self._rejected:
            return
        self._rejected = True
        self._disarm()
        if self.transport is not None and not self.transport.disconnecting:  # type: ignore[attr-defined]
            self.transport.write(error_bytes(status, code, message))
            self.loseConnection()  # type: ignore[no-untyped-call]
            # A client that does not read would keep the close pending forever.
            if self.abortTimeout is not None and self._abortingCall is None:
                self._abortingCall = self.callLater(  # type: ignore[no-untyped-call]
                    self.abortTimeout, self.forceAbortClient
                )

    def timeoutConnection(self) -> None:
        # Twisted's idle timeout closes silently; between requests we say why (408).
        if self._handlingRequest:
            super().timeoutConnection()  # type: ignore[no-untyped-call]
        else:
            self.reject(408, "timeout", "request not received in time")

    def dataReceived(self, data: bytes) -> None:
        if self._rejected:
            return
        super().dataReceived(data)  # type: ignore[no-untyped-call]

    def allHeadersReceived(self) -> None:
        if self.length is not None and self.length > self.max_body:
            self.reject(413, "too_large", f"request body over {self.max_body} bytes")
            return
        super().allHeadersReceived()  # type: ignore[no-untyped-call]

    def allContentReceived(self) -> None:
        if self._rejected:
            return
        self._disarm()
        super().allContentReceived()  # type: ignore[no-untyped-call]

    def requestDone(self, request: WebRequest) -> None:
        super().requestDone(request)  # type: ignore[no-untyped-call]
        if self.persistent and not self._rejected and self.transport is not None:
            self._arm()

    def lineLengthExceeded(self, line: bytes) -> None:
        self.reject(400, "bad_request", "request line or header too long")

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Twisted's own answer is a bare "400 Bad Request" with no body; ours is JSON.
        self.reject(400, "bad_request", "malformed HTTP request")

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self._disarm()
        site = getattr(self, "site", None)
        if isinstance(site, ApiSite):
            site.channels.discard(self)
        super().connectionLost(reason)  # type: ignore[no-untyped-call]


class ApiRequest(Request):
    """Keeps bodies in memory (they are capped) and turns failures into JSON."""

    def gotLength(self, length: int | None) -> None:
        self.content = BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        content = self.content
        assert content is not None
        channel = self.channel
        if isinstance(channel, ApiChannel) and content.tell() + len(data) > channel.max_body:
            channel.reject(413, "too_large", f"request body over {channel.max_body} bytes")
            return
        content.write(data)

    def processingFailed(self, reason: Failure) -> Failure:
        # Only reached if render() itself raised (dispatch catches everything else).
        _log.error("api request failed", error=reason.getErrorMessage())
        data = error_bytes(500, "internal", "internal error").split(b"\r\n\r\n", 1)[1]
        me: Any = self
        me.setResponseCode(500)
        me.setHeader(b"Content-Type", b"application/json")
        me.setHeader(b"Content-Length", b"%d" % len(data))
        me.write(data)
        me.finish()
        return reason


class ApiSite(Site):
    """The API's HTTP factory: our channel, request class, limits; no access log."""

    protocol = ApiChannel  # type: ignore[assignment]
    noisy = False  # no "Starting factory" lines
    requestFactory = ApiRequest
    displayTracebacks = False

    def __init__(
        self,
        resource: Resource,
        *,
        reactor: Any,
        max_body: int = MAX_BODY,
        client_timeout: float = 60.0,
    ) -> None:
        # parsePOSTFormSubmission=False: a JSON API has no form bodies, and Twisted's
        # form check parses every POST's Content-Type with the email package (~45 us).
        super().__init__(  # type: ignore[no-untyped-call]
            resource, timeout=client_timeout, reactor=reactor, parsePOSTFormSubmission=False
        )
        self.max_body = max_body
        self.client_timeout = client_timeout
        self.channels: set[ApiChannel] = set()

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)  # type: ignore[no-untyped-call]
        channel.max_body = self.max_body
        channel.request_deadline = self.client_timeout
        return channel

    def log(self, request: Any) -> None:
        return None

    def close_connections(self) -> None:
        """Close every open connection (shutdown, once the listener is closed)."""
        for channel in list(self.channels):
            if channel.transport is not None:
                channel.transport.loseConnection()


class _ApiResource(Resource):
    isLeaf = True

    def __init__(self, api: Api) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._api = api

    def render(self, request: WebRequest) -> int:
        d = Deferred.fromCoroutine(self._api.dispatch(request))
        d.addErrback(_unexpected)
        return NOT_DONE_YET


def _unexpected(failure: Failure) -> None:
    # dispatch() answers every error itself; this only catches a bug in writing.
    _log.error("api response failed", error=failure.type.__name__ if failure.type else "?")


# --------------------------------------------------------------------------- the API


def _openapi_document() -> bytes:
    return importlib.resources.files("switch.protocols").joinpath("openapi.json").read_bytes()


def _string(body: Mapping[str, Any], name: str, limit: int, *, strip: bool = True) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise bad_field(name, f"{name}: required, a non-empty string")
    if strip:
        value = value.strip()
    if len(value) > limit or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise bad_field(name, f"{name}: at most {limit} printable characters")
    return value


class Api:
    """The routes and their dependencies. ``links`` supplies ``/v1/status`` link rows."""

    def __init__(
        self,
        *,
        config: Config,
        sessions: SessionManager,
        audit: AuditSink,
        clock: Clock,
        links: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.audit = audit
        self.clock = clock
        self.links = links if links is not None else list
        self.draining = False
        #: Requests being answered (not event streams once their headers are out):
        #: shutdown drains until they are done, so an accepted request gets its answer.
        self.in_flight = 0
        #: More ``/v1/status`` keys, each call returning a mapping merged in (sessions,
        #: hit confirmations: whatever the daemon wires).
        self.status_extras: list[Callable[[], Mapping[str, Any]]] = []
        self.router = Router()
        self._openapi = _openapi_document()
        self._add_default_routes()

    # ---------------------------------------------------------------- wiring

    def resource(self) -> Resource:
        return _ApiResource(self)

    def site(self, reactor: Any) -> ApiSite:
        return ApiSite(
            self.resource(),
            reactor=reactor,
            max_body=self.config.api.max_body,
            client_timeout=self.config.api.client_timeout,
        )

    def _add_default_routes(self) -> None:
        add = self.router.add
        add(Route("GET", "/healthz", self.healthz, auth=False, always=True, summary="Liveness"))
        add(
            Route(
                "GET",
                "/v1/openapi.json",
                self.openapi,
                auth=False,
                always=True,
                summary="This API's OpenAPI 3.1 document",
            )
        )
        add(
            Route(
                "POST",
                "/v1/sessions",
                self.create_session,
                auth=False,
                body=True,
                audited=True,
                summary="Log on",
            )
        )
        add(Route("DELETE", "/v1/sessions/current", self.delete_session, summary="Log off"))
        add(Route("GET", "/v1/status", self.status, roles=ADMIN, summary="Daemon status"))
        add(
            Route(
                "POST",
                "/v1/operators/{operator}/unlock",
                self.unlock_operator,
                roles=ADMIN,
                audited=True,
                summary="Lift an operator's lockout",
            )
        )

    # ---------------------------------------------------------------- dispatch

    async def dispatch(self, request: WebRequest) -> None:
        """Answer one request; whatever happens, exactly one response or none if gone."""
        self.in_flight += 1
        try:
            await self._dispatch(request)
        finally:
            self.in_flight -= 1

    async def _dispatch(self, request: WebRequest) -> None:
        started = time.monotonic()
        gone: list[Failure] = []
        request.notifyFinish().addErrback(gone.append)
        template = "-"
        session_id: str | None = None
        try:
            route, call = self._prepare(request)
            template = route.template
            session_id = call.session.id if call.session else None
            response = await route.handler(call)
        except ApiError as exc:
            response = _error_response(exc)
        except SessionError as exc:
            response = _error_response(_session_error(exc))
        except AuditUnavailable:
            response = _error_response(ApiError(503, "audit_unavailable", "audit failing"))
        except Exception:
            _log.exception("api handler failed", route=template)
            response = _error_response(ApiError(500, "internal", "internal error"))
        if gone:
            return
        self._write(request, response)
        _log.info(
            "api request",
            method=_method(request),
            route=template,
            status=response.status,
            session=session_id,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )

    def _prepare(self, request: WebRequest) -> tuple[Route, Call]:
        method = _method(request)
        try:
            path = bytes(request.path).decode("ascii")
        except UnicodeDecodeError:
            raise ApiError(404, "not_found", "no such resource") from None
        try:
            route, params = self.router.match(method, path)
        except UnicodeDecodeError:
            raise ApiError(404, "not_found", "no such resource") from None
        if self.draining and not route.always:
            raise ApiError(503, "draining", "shutting down", headers={"Retry-After": "5"})
        session = None
        if route.auth:
            session = self.sessions.authenticate(_bearer(request))
            if route.roles and not session.has_any(route.roles):
                raise ApiError(403, "forbidden", "role not allowed")
        if route.audited and not self.audit.healthy:
            raise ApiError(503, "audit_unavailable", "audit failing")
        body = self._body(request, route, method)
        query = {
            k.decode("utf-8", "replace"): [v.decode("utf-8", "replace") for v in vs]
            for k, vs in (request.args or {}).items()
        }
        call = Call(method, path, params, query, body, session, request)
        return route, call

    def _body(self, request: WebRequest, route: Route, method: str) -> dict[str, Any] | None:
        content = request.content
        content.seek(0)
        data: bytes = content.read()
        if method not in ("POST", "PATCH", "PUT") or not (route.body or data):
            return None
        ctype = request.getHeader("content-type") or ""
        if ctype.split(";", 1)[0].strip().lower() != "application/json":
            raise ApiError(415, "unsupported_media_type", "send Content-Type: application/json")
        if not route.body:
            return None
        try:
            doc = loads(data)
        except ValueError:  # bad UTF-8 or JSON, NaN, nesting beyond 1024
            raise ApiError(400, "malformed_json", "body is not valid JSON") from None
        if not isinstance(doc, dict):
            raise ApiError(400, "malformed_json", "body must be a JSON object")
        return doc

    def _write(self, request: WebRequest, response: Response) -> None:
        request.setResponseCode(response.status, _REASONS.get(response.status, "").encode())
        request.setHeader(b"Server", b"switch")
        request.setHeader(b"Cache-Control", b"no-store")
        for name, value in response.headers.items():
            request.setHeader(name.encode("ascii"), value.encode("ascii"))
        if response.stream is not None:
            request.setHeader(b"Content-Type", response.content_type.encode("ascii"))
            response.stream(request)
            return
        if response.raw is not None:
            data = response.raw
        elif response.body is not None:
            data = compact(response.body)
        else:
            data = b""
        if data or response.status not in (204, 304):
            request.setHeader(b"Content-Type", response.content_type.encode("ascii"))
            request.setHeader(b"Content-Length", b"%d" % len(data))
        else:
            request.responseHeaders.removeHeader(b"Content-Type")
            request.defaultContentType = None
        if data:
            request.write(data)
        request.finish()

    # ---------------------------------------------------------------- handlers

    async def healthz(self, call: Call) -> Response:
        return Response(200, {"status": "ok"})

    async def openapi(self, call: Call) -> Response:
        return Response(200, raw=self._openapi)

    async def create_session(self, call: Call) -> Response:
        body = call.body or {}
        terminal = _string(body, "terminal", 64)
        operator = _string(body, "operator", 64)
        password = _string(body, "password", 1024, strip=False)
        logon = await self.sessions.logon(terminal, operator, password)
        return Response(
            201,
            {
                "token": logon.token,
                "expires": None if logon.expires is None else iso_utc(logon.expires),
                "terminal": logon.session.terminal,
                "operator": logon.session.operator,
                "roles": sorted(logon.session.roles),
            },
        )

    async def delete_session(self, call: Call) -> Response:
        await self.sessions.logoff(call.require_session())
        return Response(204)

    async def status(self, call: Call) -> Response:
        """Links (state, since, last error, queue depth and age), audit health, the
        session count, and whatever ``status_extras`` add (``switchctl status``)."""
        body: dict[str, Any] = {}
        for extra in self.status_extras:
            try:
                body.update(extra())
            except Exception as exc:  # status must answer even if one source breaks
                _log.error("status source failed", error=type(exc).__name__)
        body.update(
            links=self.links(),
            audit={"healthy": self.audit.healthy},
            sessions=self.sessions.count,
        )
        return Response(200, body)

    async def unlock_operator(self, call: Call) -> Response:
        operator = call.params["operator"]
        if len(operator) > 64 or not self.sessions.knows(operator):
            raise ApiError(404, "not_found", "no such operator", field="operator")
        was_locked = await self.sessions.unlock(operator, call.require_session())
        return Response(200, {"operator": operator, "was_locked": was_locked})


# --------------------------------------------------------------------------- helpers


def _method(request: WebRequest) -> str:
    return bytes(request.method).decode("ascii", "replace")


def _bearer(request: WebRequest) -> str | None:
    value = request.getHeader("authorization")
    if not value:
        return None
    scheme, _, token = str(value).partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _session_error(exc: SessionError) -> ApiError:
    if isinstance(exc, OperatorLocked):
        return ApiError(423, exc.code, exc.message, headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, LogonForbidden):
        return ApiError(403, exc.code, exc.message)
    if isinstance(exc, LogonRefused | SessionInvalid):
        return ApiError(401, exc.code, exc.message, headers={"WWW-Authenticate": "Bearer"})
    return ApiError(401, exc.code, exc.message)


def _error_response(exc: ApiError) -> Response:
    return Response(exc.status, exc.body(), headers=exc.headers)
