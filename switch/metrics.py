"""Prometheus metrics of DESIGN §8 and the ``/metrics`` resource that serves them.

One :class:`Metrics` object owns its own ``CollectorRegistry`` (no global state, so tests
and several daemons in one process never collide) and every metric the design lists.
Label values must come from config (link and network names) or closed sets (directions,
kinds, outcomes, reasons), never from message content: a label value per plate or name
would leak data and explode the series count.

Served by a small twisted.web ``Resource`` on the reactor thread, bound to the configured
host (127.0.0.1 by default), not by ``prometheus_client.start_http_server``, which starts
a thread listening on every interface.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from twisted.web.resource import Resource
from twisted.web.server import Site

#: Upstream answers take 20 ms to 10 s, the inquiry timeout is 30 s (DESIGN §4, §6).
REPLY_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: One group commit with fsync: sub-millisecond to tens of milliseconds.
COMMIT_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

#: Every metric name as exposed (counters with their ``_total``), for tests and docs.
NAMES: Final = (
    "switch_messages_total",
    "switch_link_up",
    "switch_link_reconnects_total",
    "switch_reply_seconds",
    "switch_queue_depth",
    "switch_queue_oldest_seconds",
    "switch_inquiries_total",
    "switch_hits_total",
    "switch_frames_rejected_total",
    "switch_audit_commit_seconds",
    "switch_audit_failures_total",
    "switch_sessions",
    "switch_logon_failures_total",
    "switch_hit_confirmations_overdue",
)


#: ``switch_inquiries_total{outcome}``: hit somewhere; no record anywhere; some network
#: did not answer (error, timeout, unavailable) and none had a hit; refused by the API.
INQUIRY_OUTCOMES: Final = ("hit", "no_record", "incomplete", "rejected")


class MessageCounter:
    """``switch_messages_total{link,direction,kind}`` as plain integers.

    It counts every application message both ways, sixteen per four-network inquiry,
    and a prometheus_client ``Counter`` takes a lock for every increment. Incremented
    and collected on the reactor thread only (the links and ``/metrics`` both run there).
    """

    NAME: Final = "switch_messages"
    HELP: Final = "Application messages sent or received on a link."
    LABELS: Final = ("link", "direction", "kind")

    def __init__(self, registry: CollectorRegistry) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}
        registry.register(self)

    def inc(self, link: str, direction: str, kind: str) -> None:
        key = (link, direction, kind)
        self._counts[key] = self._counts.get(key, 0) + 1

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.NAME, self.HELP, labels=self.LABELS)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.NAME, self.HELP, labels=self.LABELS)
        for key, count in sorted(self._counts.items()):
            family.add_metric(key, count)
        yield family


class Metrics:
    """The daemon's metrics. Attributes are the prometheus_client objects themselves."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.registry = r
        self._reply_children: dict[str, Any] = {}
        self._inquiry_children: dict[tuple[str, str], Any] = {}
        self.messages = MessageCounter(r)
        self.link_up = Gauge(
            "switch_link_up", "1 while the link is logged on, else 0.", ["link"], registry=r
        )
        self.link_reconnects = Counter(
            "switch_link_reconnects_total",
            "Connection attempts after a link was lost.",
            ["link"],
            registry=r,
        )
        self.reply_seconds = Histogram(
            "switch_reply_seconds",
            "Time from sending an inquiry to a network until its reply, in seconds.",
            ["network"],
            buckets=REPLY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "switch_queue_depth",
            "Teletype messages queued for a link and not yet accepted.",
            ["link"],
            registry=r,
        )
        self.queue_oldest_seconds = Gauge(
            "switch_queue_oldest_seconds",
            "Age of the oldest message queued for a link, in seconds (0 when empty).",
            ["link"],
            registry=r,
        )
        self.inquiries = Counter(
            "switch_inquiries_total",
            "Inquiries completed, by subject and outcome.",
            ["subject", "outcome"],
            registry=r,
        )
        self.hits = Counter(
            "switch_hits_total",
            "Records returned as hits, by network and file.",
            ["network", "file"],
            registry=r,
        )
        self.frames_rejected = Counter(
            "switch_frames_rejected_total",
            "Frames refused (malformed, too large, unknown type), by link and reason.",
            ["link", "reason"],
            registry=r,
        )
        self.audit_commit_seconds = Histogram(
            "switch_audit_commit_seconds",
            "Time to commit one batch of audit records, in seconds.",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.audit_failures = Counter(
            "switch_audit_failures_total", "Audit writes that failed.", registry=r
        )
        self.sessions = Gauge("switch_sessions", "Operator sessions open now.", registry=r)
        self.logon_failures = Counter(
            "switch_logon_failures_total",
            "Failed logons (wrong password or unknown operator).",
            registry=r,
        )
        self.hit_confirmations_overdue = Gauge(
            "switch_hit_confirmations_overdue",
            "Hit-confirmation requests past their deadline and not answered.",
            registry=r,
        )

    def init_links(self, links: Iterable[tuple[str, str]]) -> None:
        """Create the per-link series at zero for ``(link, network)`` pairs from config,
        so that dashboards and alerts see a down link before it ever connected."""
        for link, network in links:
            self.link_up.labels(link=link).set(0)
            self.link_reconnects.labels(link=link)
            self.queue_depth.labels(link=link).set(0)
            self.queue_oldest_seconds.labels(link=link).set(0)
            self.reply_seconds.labels(network=network)

    # Inquiry outcomes (switch.inquiry.InquiryMetrics protocol). The outcome label is a
    # closed set; every subject/outcome series exists from start so that the first error
    # of a kind is an increase that rate() and increase() can see.

    def init_inquiries(self, subjects: Iterable[str]) -> None:
        for subject in subjects:
            for outcome in INQUIRY_OUTCOMES:
                self.inquiries.labels(subject=subject, outcome=outcome)

    # labels() costs several us a call; these run per reply, so the children are cached
    # per label tuple (no series is ever removed, so a cached child stays the live one).

    def reply(self, network: str, status: str, seconds: float | None, files: list[str]) -> None:
        if seconds is not None:
            child = self._reply_children.get(network)
            if child is None:
                child = self._reply_children[network] = self.reply_seconds.labels(network=network)
            child.observe(seconds)
        if status == "hit":
            for file in files:
                self.hits.labels(network=network, file=file).inc()

    def inquiry_done(self, subject: str, outcome: str) -> None:
        key = (subject, outcome)
        child = self._inquiry_children.get(key)
        if child is None:
            child = self._inquiry_children[key] = self.inquiries.labels(
                subject=subject, outcome=outcome
            )
        child.inc()

    # Small helpers for the session manager (switch.sessions.Metrics protocol).

    def set_sessions(self, count: int) -> None:
        self.sessions.set(count)

    def logon_failed(self) -> None:
        self.logon_failures.inc()

    def exposition(self) -> bytes:
        """The text exposition format of every metric."""
        data: bytes = generate_latest(self.registry)
        return data


class MetricsResource(Resource):
    """``GET /metrics``: the exposition, rendered synchronously (it takes microseconds)."""

    isLeaf = True

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._metrics = metrics

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        return self._metrics.exposition()


class _NotFound(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def render(self, request: Any) -> bytes:
        request.setResponseCode(404)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"not found; metrics are at /metrics\n"


class _Root(Resource):
    def __init__(self, metrics: Metrics) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.putChild(b"metrics", MetricsResource(metrics))
        self._missing = _NotFound()

    def getChild(self, path: bytes, request: Any) -> Resource:
        return self._missing


class _QuietSite(Site):
    """A Site without the legacy access log (it would go to the old global log)."""

    noisy = False

    def log(self, request: Any) -> None:
        return None


def metrics_site(metrics: Metrics, reactor: object = None, timeout: float = 60.0) -> Site:
    """The HTTP factory serving ``/metrics`` (and 404 elsewhere)."""
    site = _QuietSite(_Root(metrics), timeout=timeout, reactor=reactor)  # type: ignore[no-untyped-call]
    site.displayTracebacks = False
    return site
