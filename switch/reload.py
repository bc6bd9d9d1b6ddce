"""Live reload of the configuration (DESIGN §8): SIGHUP, ``switchctl reload``, ``POST /v1/reload``.

A reload reads the same ``switch.toml`` (and the ``routes.toml``/``terminals.toml`` it
names) with :func:`switch.config.load_config`, in a thread (one scrypt per operator),
and validates all of it before anything changes: a bad config is refused with exactly the
lines ``switchctl config check`` prints, logged, audited (file and key only: the messages
may quote values), and the running config stays. The links of the new config are built
(endpoint, TLS files, secret) before anything is applied too: a link that cannot be built
refuses the reload.

A good config is applied in one reactor turn, so the next request sees all of it and no
request sees half: the root's, the API's and the sessions' config, terminals and operators
(sessions of a removed terminal or operator, or left with no role, end; others get their
new roles), rate limits and routes (read per request), the inquiry timeout, the teletype
rules. Then the links change in the background (:meth:`LinkManager.apply`): unchanged
links are not touched; a changed one is drained (its outstanding inquiries and ACKs, bounded
by ``drain_timeout``), logged off and dialled with its new config; one whose only change is
its secret redials at once; a new one is dialled; a removed one is drained, logged off and
handed to ``on_link_removed`` hooks (the teletype engine moves its queue to the intercept
queue). Settings that cannot change under a running daemon (sockets, ports, store, audit,
``var_dir``, ``ori``) are reported as ``restart_required`` and keep their old value.

Every reload, applied or refused, is audited as ``config.reload`` with the SHA-256 of each
of the three files. The planning functions are pure (:func:`plan_links`,
:func:`plan_reload`, :func:`session_changes`) and tested on their own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import structlog
from twisted.internet.defer import Deferred, DeferredLock, maybeDeferred, succeed
from twisted.python.failure import Failure

from switch.audit.interface import AuditSink, AuditUnavailable
from switch.config import Config, ConfigError, ConfigInvalid, LinkConfig, Operator, Terminal
from switch.sessions import Session

if TYPE_CHECKING:
    from switch.protocols.link_service import LinkManager, PreparedLinks
    from switch.service import SwitchService

_log = structlog.get_logger("switch.reload")

#: Top-level parts of the config a running daemon cannot take over (reported, kept).
RESTART_KEYS: Final = ("ori", "var_dir", "api", "metrics", "store", "audit")
#: File roles in the audit record and the API answer.
FILE_ROLES: Final = ("switch", "routes", "terminals")


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class LinkPlan:
    """What a reload does to each link, by name, in config order."""

    unchanged: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()  # drained, rebuilt from the new config, dialled
    secret_only: tuple[str, ...] = ()  # same config, new secret: redialled at once

    @property
    def touched(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.secret_only)


def plan_links(
    old: Sequence[LinkConfig],
    new: Sequence[LinkConfig],
    old_secrets: Mapping[str, str | None],
    new_secrets: Mapping[str, str | None],
    old_tls: Mapping[str, str | None] | None = None,
    new_tls: Mapping[str, str | None] | None = None,
) -> LinkPlan:
    """Compare two link lists; ``*_secrets`` map link name -> digest of its secret,
    ``*_tls`` link name -> digest of its CA, certificate and key files.

    A link is matched by name. Equal config and equal digests: unchanged. Only the
    secret (its file, or the file's content) differs: ``secret_only``. Anything else
    that differs (endpoint, network, station, TLS files or their content, timers,
    window): ``changed`` (the TLS context is built with the link, so new certificate
    files need a new link).
    """
    before = {c.name: c for c in old}
    old_tls, new_tls = old_tls or {}, new_tls or {}
    plan: dict[str, list[str]] = {k: [] for k in ("unchanged", "added", "changed", "secret")}
    for cfg in new:
        was = before.get(cfg.name)
        if was is None:
            plan["added"].append(cfg.name)
        elif old_tls.get(cfg.name) != new_tls.get(cfg.name):
            plan["changed"].append(cfg.name)
        elif was == cfg and old_secrets.get(cfg.name) == new_secrets.get(cfg.name):
            plan["unchanged"].append(cfg.name)
        elif dataclasses.replace(was, secret_file=cfg.secret_file) == cfg:
            plan["secret"].append(cfg.name)
        else:
            plan["changed"].append(cfg.name)
    names = {c.name for c in new}
    return LinkPlan(
        unchanged=tuple(plan["unchanged"]),
        added=tuple(plan["added"]),
        removed=tuple(c.name for c in old if c.name not in names),
        changed=tuple(plan["changed"]),
        secret_only=tuple(plan["secret"]),
    )


@dataclass(frozen=True)
class Changes:
    """Names added, removed and changed between two mappings."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def json(self) -> dict[str, list[str]]:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
        }


def diff_names(old: Mapping[str, object], new: Mapping[str, object]) -> Changes:
    return Changes(
        added=tuple(sorted(set(new) - set(old))),
        removed=tuple(sorted(set(old) - set(new))),
        changed=tuple(sorted(k for k in set(old) & set(new) if old[k] != new[k])),
    )


@dataclass(frozen=True)
class ReloadPlan:
    """Everything a reload changes; the audit record and the API answer are made of it."""

    links: LinkPlan
    terminals: Changes
    operators: Changes
    routes_changed: bool
    restart_required: tuple[str, ...]


def plan_reload(
    old: Config,
    new: Config,
    old_secrets: Mapping[str, str | None],
    new_secrets: Mapping[str, str | None],
) -> ReloadPlan:
    """Pure: what applying ``new`` over ``old`` would change."""
    return ReloadPlan(
        links=plan_links(old.links, new.links, old_secrets, new_secrets),
        terminals=diff_names(old.terminals, new.terminals),
        operators=diff_names(old.operators, new.operators),
        routes_changed=old.routes != new.routes,
        restart_required=tuple(k for k in RESTART_KEYS if getattr(old, k) != getattr(new, k)),
    )


def session_changes(
    sessions: Iterable[Session],
    terminals: Mapping[str, Terminal],
    operators: Mapping[str, Operator],
) -> list[tuple[Session, frozenset[str] | None, str]]:
    """For each live session: its new roles, or None and why it must end.

    A session's roles are its operator's roles within its terminal's maximum, as at
    logon (switch.sessions); a terminal or operator that is gone, or roles that no
    longer meet, end the session.
    """
    out: list[tuple[Session, frozenset[str] | None, str]] = []
    for session in sessions:
        terminal = terminals.get(session.terminal)
        operator = operators.get(session.operator)
        if terminal is None:
            out.append((session, None, "terminal_removed"))
        elif operator is None:
            out.append((session, None, "operator_removed"))
        else:
            roles = frozenset(operator.roles & terminal.roles)
            if not roles:
                out.append((session, None, "no_roles"))
            else:
                out.append((session, roles, "roles" if roles != session.roles else "unchanged"))
    return out


# --------------------------------------------------------------------------- files


def sha256_file(path: Path | None) -> str | None:
    """Hex SHA-256 of a file's bytes, or None when it cannot be read."""
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def named_files(path: Path, fallback: Config | None = None) -> dict[str, Path | None]:
    """The three files a load of ``path`` reads (as the loader resolves them).

    From a broken ``switch.toml`` the names may be unreadable: then the running
    config's files, else the defaults next to it.
    """
    base = path.parent
    routes: Path | None = fallback.routes_file if fallback else None
    terminals: Path | None = fallback.terminals_file if fallback else None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        data = {}
    value = data.get("routes", "routes.toml")
    if isinstance(value, str) and value:
        routes = base / value
    value = data.get("terminals", "terminals.toml")
    if isinstance(value, str) and value:
        terminals = base / value
    return {"switch": path, "routes": routes, "terminals": terminals}


def files_json(files: Mapping[str, Path | None]) -> dict[str, dict[str, str | None]]:
    """``{role: {path, sha256}}`` for the audit record and the API answer."""
    return {
        role: {"path": None if p is None else str(p), "sha256": sha256_file(p)}
        for role, p in files.items()
    }


# --------------------------------------------------------------------------- the reloader


class InquiryTimeout(Protocol):
    """The inquiry engine as a reload sees it."""

    timeout: float


@dataclass
class ReloadResult:
    """What one reload did; ``summary()`` is the ``POST /v1/reload`` answer."""

    applied: bool
    trigger: str
    files: dict[str, dict[str, str | None]]
    errors: list[str] = field(default_factory=list)
    plan: ReloadPlan | None = None
    sessions_ended: int = 0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"result": "applied" if self.applied else "refused"}
        out["files"] = self.files
        if self.plan is not None:
            links = self.plan.links
            out.update(
                links_added=list(links.added),
                links_removed=list(links.removed),
                links_redialled=list(links.changed),
                links_secret_changed=list(links.secret_only),
                terminals_added=list(self.plan.terminals.added),
                terminals_removed=list(self.plan.terminals.removed),
                terminals_changed=list(self.plan.terminals.changed),
                operators_added=list(self.plan.operators.added),
                operators_removed=list(self.plan.operators.removed),
                operators_changed=list(self.plan.operators.changed),
                routes_changed=self.plan.routes_changed,
                restart_required=list(self.plan.restart_required),
                sessions_ended=self.sessions_ended,
            )
        if self.errors:
            out["errors"] = list(self.errors)
        return out


Loader = Callable[[Path], Config]
#: Runs ``f(*args)`` off the reactor thread (``deferToThreadPool``), or inline in tests.
Runner = Callable[..., "Deferred[Any]"]


def run_inline(f: Callable[..., Any], *args: Any) -> Deferred[Any]:
    """A :data:`Runner` that calls ``f`` now (tests; a failure becomes a failed Deferred)."""
    return maybeDeferred(f, *args)


class Reloader:
    """Loads, validates, audits and applies a new configuration; one reload at a time.

    ``attach`` gives it the parts built after the root (links, inquiry engine, teletype
    engine); ``on_link_removed`` hooks run once a removed link has logged off, with its
    name (wire the teletype engine's "move this link's queue to the intercept queue");
    ``on_applied`` hooks get every applied config.
    """

    def __init__(
        self,
        root: SwitchService,
        clock: Any,
        audit: AuditSink,
        *,
        path: Path,
        load: Loader | None = None,
        run: Runner | None = None,
    ) -> None:
        self._root = root
        self._clock = clock
        self._audit = audit
        self.path = path
        self._load: Loader = load if load is not None else _load_config
        self._run: Runner = run if run is not None else _thread_runner(clock)
        self._lock = DeferredLock()
        self.links: LinkManager | None = None
        self.inquiries: InquiryTimeout | None = None
        self.teletype: Any = None
        self.on_link_removed: list[Callable[[str], object]] = []
        #: Called with the new config right after it is applied, in the same reactor
        #: turn (parts built from config that read it once: the incoming router's
        #: terminals, ...). A failing hook is logged; the reload stays applied.
        self.on_applied: list[Callable[[Config], object]] = []
        self._transition: Deferred[None] | None = None
        self.closed = False

    def attach(
        self,
        *,
        links: LinkManager | None = None,
        inquiries: InquiryTimeout | None = None,
        teletype: Any = None,
    ) -> None:
        if links is not None:
            self.links = links
            links.on_removed.append(self._link_removed)
        if inquiries is not None:
            self.inquiries = inquiries
        if teletype is not None:
            self.teletype = teletype

    def reload(self, trigger: str, session: Session | None = None) -> Deferred[ReloadResult]:
        """Reload now. Fires with the result (refused or applied); fails with
        AuditUnavailable when the reload cannot be audited (nothing applied then)."""
        return Deferred.fromCoroutine(self._reload(trigger, session))

    def wait_links(self) -> Deferred[None]:
        """Fires once the links of the last reload have settled (drained and redialled)."""
        d = self._transition
        if d is None or d.called:
            return succeed(None)
        waiter: Deferred[None] = Deferred()

        def fire(result: object) -> object:
            waiter.callback(None)
            return result

        d.addBoth(fire)
        return waiter

    async def _reload(self, trigger: str, session: Session | None) -> ReloadResult:
        await self._lock.acquire()
        try:
            await self.wait_links()
            return await self._reload_locked(trigger, session)
        finally:
            self._lock.release()

    async def _reload_locked(self, trigger: str, session: Session | None) -> ReloadResult:
        old = self._root.config
        files = named_files(self.path, old)
        who = _who(session)
        try:
            new: Config = await self._run(self._load, self.path)
        except ConfigInvalid as exc:
            return await self._refuse(trigger, who, files, exc.errors)
        except Exception as exc:  # unreadable file, loader bug: an error line, no trace
            problem = ConfigError(str(self.path), "-", f"cannot load config: {exc}")
            return await self._refuse(trigger, who, files, [problem])
        files = {
            "switch": new.source,
            "routes": new.routes_file or files["routes"],
            "terminals": new.terminals_file or files["terminals"],
        }
        prepared: PreparedLinks | None = None
        if self.links is not None:
            from switch.protocols.link_service import LinkSetupError

            try:
                prepared = self.links.prepare(new.links)
            except LinkSetupError as exc:
                problem = ConfigError(str(new.source), "links", str(exc))
                return await self._refuse(trigger, who, files, [problem])
        old_secrets = self.links.secret_digests() if self.links is not None else {}
        new_secrets = prepared.digests if prepared is not None else {}
        plan = plan_reload(old, new, old_secrets, new_secrets)
        if prepared is not None:
            plan = dataclasses.replace(plan, links=prepared.plan)
        result = ReloadResult(True, trigger, files_json(files), plan=plan)
        ending = [
            (s, roles, why)
            for s, roles, why in session_changes(
                self._root.sessions.sessions(), new.terminals, new.operators
            )
            if roles is None
        ]
        result.sessions_ended = len(ending)
        if self.closed:  # the daemon began to stop while the files were read
            raise AuditUnavailable("shutting down: reload not applied")
        # Audited before it takes effect: a reload the audit cannot record is not made.
        try:
            await self._audit.record("config.reload", {**who, **_audit_applied(result)})
        except AuditUnavailable:
            # The links built for it were never started: nothing to undo.
            _log.error("config reload not applied: audit failing", cause=trigger)
            raise
        self._apply(new)
        _log.info(
            "config reloaded",
            # Log keys are a closed list (switch.logs): the change summary goes in
            # ``what``; it holds configured names and counts only.
            cause=trigger,
            what={k: v for k, v in result.summary().items() if k not in ("result", "files")},
            count=result.sessions_ended,
        )
        if plan.restart_required:
            _log.warning("config changes need a restart", what=list(plan.restart_required))
        if new.demo_passwords:
            _log.warning(
                "DEMO PASSWORDS CONFIGURED: change them before real use (switchctl passwd)",
                operators=sorted(new.demo_passwords),
            )
        if prepared is not None and self.links is not None:
            busy = self._busy_on if self.inquiries is not None else None
            d = self.links.apply(prepared, drain_timeout=new.drain_timeout, busy=busy)
            d.addErrback(_log_failure, "link changes after reload failed")
            self._transition = d
        return result

    def _apply(self, new: Config) -> None:
        """Swap everything in one reactor turn: the next request sees only ``new``."""
        root = self._root
        kept = {k: getattr(root.config, k) for k in RESTART_KEYS}
        effective = dataclasses.replace(new, **kept)
        root.config = effective
        root.api.config = effective
        sessions = root.sessions
        sessions.config = effective.sessions
        sessions.terminals = effective.terminals
        sessions.operators = effective.operators
        for session, roles, why in session_changes(
            sessions.sessions(), effective.terminals, effective.operators
        ):
            if roles is None:
                sessions.end(session, f"config_{why}")
            else:
                terminal = effective.terminals[session.terminal]
                session.roles = roles
                session.ori = terminal.ori
                session.idle_exempt = terminal.idle_exempt
        if self.inquiries is not None:
            self.inquiries.timeout = effective.inquiry.timeout
        teletype = self.teletype
        if teletype is not None:
            names = [link.name for link in effective.links]
            teletype.set_rules(effective.routes.destinations, names)
            if hasattr(teletype, "ttl"):
                teletype.ttl = effective.teletype.ttl_hours * 3600.0
            if hasattr(teletype, "max_attempts"):
                teletype.max_attempts = effective.teletype.max_attempts
        for hook in list(self.on_applied):
            try:
                hook(effective)
            except Exception as exc:
                _log.error("reload hook failed", error=type(exc).__name__)

    def _busy_on(self, link: str) -> bool:
        engine = self.inquiries
        outstanding = getattr(engine, "outstanding", None)
        return bool(outstanding(link)) if outstanding is not None else False

    def _link_removed(self, name: str) -> None:
        for hook in list(self.on_link_removed):
            try:
                result = hook(name)
            except Exception as exc:
                _log.error("link removal hook failed", link=name, error=type(exc).__name__)
                continue
            if isinstance(result, Deferred):
                result.addErrback(_log_failure, "link removal hook failed")

    async def _refuse(
        self,
        trigger: str,
        who: Mapping[str, object],
        files: Mapping[str, Path | None],
        errors: Sequence[ConfigError],
    ) -> ReloadResult:
        lines = [str(e) for e in errors]
        result = ReloadResult(False, trigger, files_json(files), errors=lines)
        # The log and the audit name the file and key only; the messages may quote values.
        _log.error(
            "config reload refused: old config kept",
            cause=trigger,
            what=[f"{e.file}: {e.key}" for e in errors],
            count=len(errors),
        )
        await self._audit.record(
            "config.reload",
            {
                **who,
                "trigger": trigger,
                "result": "refused",
                "files": result.files,
                "errors": [{"file": e.file, "key": e.key} for e in errors],
            },
        )
        return result


def _audit_applied(result: ReloadResult) -> dict[str, object]:
    assert result.plan is not None
    plan = result.plan
    return {
        "trigger": result.trigger,
        "result": "applied",
        "files": result.files,
        "links": {
            "added": list(plan.links.added),
            "removed": list(plan.links.removed),
            "redialled": list(plan.links.changed),
            "secret_changed": list(plan.links.secret_only),
        },
        "terminals": plan.terminals.json(),
        "operators": plan.operators.json(),
        "routes_changed": plan.routes_changed,
        "restart_required": list(plan.restart_required),
        "sessions_ended": result.sessions_ended,
    }


def _who(session: Session | None) -> dict[str, object]:
    if session is None:
        return {}
    return {"session": session.id, "terminal": session.terminal, "operator": session.operator}


def _load_config(path: Path) -> Config:
    from switch.config import load_config

    return load_config(path)


def _thread_runner(reactor: Any) -> Runner:
    from twisted.internet.threads import deferToThreadPool

    def run(f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)
        return d

    return run


def _log_failure(failure: Failure, message: str) -> None:
    _log.error(message, error=type(failure.value).__name__)
