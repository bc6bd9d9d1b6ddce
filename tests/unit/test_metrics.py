"""Metrics of DESIGN §8 parsed back with prometheus_client's own parser; log rules."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest

from switch import logs
from switch.metrics import NAMES, Metrics, MetricsResource

# name (as exposed) -> (type, label names), straight from DESIGN §8.
EXPECTED = {
    "switch_messages_total": ("counter", {"link", "direction", "kind"}),
    "switch_link_up": ("gauge", {"link"}),
    "switch_link_reconnects_total": ("counter", {"link"}),
    "switch_reply_seconds": ("histogram", {"network"}),
    "switch_queue_depth": ("gauge", {"link"}),
    "switch_queue_oldest_seconds": ("gauge", {"link"}),
    "switch_inquiries_total": ("counter", {"subject", "outcome"}),
    "switch_hits_total": ("counter", {"network", "file"}),
    "switch_frames_rejected_total": ("counter", {"link", "reason"}),
    "switch_audit_commit_seconds": ("histogram", set()),
    "switch_audit_failures_total": ("counter", set()),
    "switch_sessions": ("gauge", set()),
    "switch_logon_failures_total": ("counter", set()),
    "switch_hit_confirmations_overdue": ("gauge", set()),
}


def exercised() -> Metrics:
    m = Metrics()
    m.init_links([("local", "local"), ("national", "national")])
    m.messages.inc("local", "out", "inquiry")
    m.link_up.labels(link="local").set(1)
    m.link_reconnects.labels(link="local").inc()
    m.reply_seconds.labels(network="local").observe(0.042)
    m.queue_depth.labels(link="local").set(3)
    m.queue_oldest_seconds.labels(link="local").set(12)
    m.inquiries.labels(subject="person", outcome="hit").inc()
    m.hits.labels(network="state", file="wanted_person").inc()
    m.frames_rejected.labels(link="state", reason="too_large").inc()
    m.audit_commit_seconds.observe(0.003)
    m.audit_failures.inc()
    m.set_sessions(2)
    m.logon_failed()
    m.hit_confirmations_overdue.set(1)
    return m


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_every_design_metric_is_exposed_with_type_help_and_labels() -> None:
    """Each metric of DESIGN §8 parses back with its type, help text and label names."""
    assert set(NAMES) == set(EXPECTED)
    fams = families(exercised().exposition().decode())
    for exposed, (kind, labels) in EXPECTED.items():
        name = exposed.removesuffix("_total") if kind == "counter" else exposed
        fam = fams[name]
        assert fam.type == kind, exposed
        assert fam.documentation, exposed
        main = [s for s in fam.samples if not s.name.endswith(("_created", "_bucket"))]
        assert main, exposed
        for sample in main:
            assert set(sample.labels) == labels, (exposed, sample)
        if kind == "counter":
            assert any(s.name == exposed for s in fam.samples)


def test_values_round_trip_and_links_start_at_zero() -> None:
    """Values set are the values parsed; configured links exist at 0 before any use."""
    fams = families(exercised().exposition().decode())

    def value(name: str, suffix: str = "", **labels: str) -> float:
        for s in fams[name].samples:
            if s.name == name + suffix and s.labels == labels:
                return float(s.value)
        raise KeyError((name, labels))

    assert value("switch_sessions") == 2
    assert value("switch_logon_failures", "_total") == 1
    assert value("switch_link_up", link="local") == 1
    assert value("switch_link_up", link="national") == 0
    assert value("switch_queue_depth", link="national") == 0
    assert value("switch_reply_seconds", "_count", network="local") == 1
    assert value("switch_reply_seconds", "_bucket", network="local", le="0.05") == 1


def test_registries_are_independent() -> None:
    """Two Metrics objects do not share series (no global registry)."""
    a, b = Metrics(), Metrics()
    a.set_sessions(5)
    assert "switch_sessions 0.0" in b.exposition().decode()


def test_metrics_resource_serves_exposition() -> None:
    """GET on the resource returns the text format with its content type."""
    m = exercised()
    request = DummyRequest([b"metrics"])
    body = MetricsResource(m).render_GET(request)
    ctype = request.responseHeaders.getRawHeaders(b"content-type")[0]
    assert ctype.startswith(b"text/plain; version=")
    assert "switch_sessions" in families(body.decode())


# --------------------------------------------------------------------------- logs


@pytest.fixture
def log_stream() -> Any:
    stream = io.StringIO()
    logs.configure(stream=stream, level="debug")
    yield stream
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_logs_are_json_lines_and_unknown_keys_redacted(log_stream: io.StringIO) -> None:
    """Events render as one JSON object per line; a key outside the allow-list (which
    could hold message content) is replaced by [redacted]."""
    log = structlog.get_logger("t")
    log.info("inquiry sent", link="state", inquiry_id="X1", name="DOE, JOHN")
    [event] = lines(log_stream)
    assert event["event"] == "inquiry sent" and event["level"] == "info"
    assert event["link"] == "state" and event["inquiry_id"] == "X1"
    assert event["name"] == logs.REDACTED
    assert "DOE" not in log_stream.getvalue()
    assert event["timestamp"].endswith("Z")


def test_bind_safe_refuses_unlisted_keys() -> None:
    """bind_safe raises for a key not in ALLOWED_KEYS, so a mistake fails a test."""
    log = structlog.get_logger("t")
    assert logs.bind_safe(log, link="local") is not None
    with pytest.raises(ValueError, match="plate"):
        logs.bind_safe(log, plate="ABC123")


def test_exceptions_render_without_locals(log_stream: io.StringIO) -> None:
    """A logged exception shows type and frames but not local variables."""
    secret_local = "SECRET-FRAME-CONTENT"
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("t").exception("failed", link="local")
    assert secret_local not in log_stream.getvalue()
    [event] = lines(log_stream)
    assert "ValueError" in json.dumps(event["exception"])


def test_twisted_events_are_forwarded(log_stream: io.StringIO) -> None:
    """The Twisted observer turns a Twisted event (and a failure) into a JSON line."""
    observer = logs.TwistedToStructlog()
    globalLogPublisher.addObserver(observer)
    try:
        from twisted.logger import Logger

        Logger(namespace="twisted.test").warn("port {port} closed", port=7101)
        observer(
            {
                "log_level": LogLevel.error,
                "log_format": "oops",
                "log_namespace": "x",
                "log_failure": Failure(RuntimeError("bad")),
                "isError": 1,
            }
        )
    finally:
        globalLogPublisher.removeObserver(observer)
    events = lines(log_stream)
    assert events[0]["event"] == "port 7101 closed" and events[0]["level"] == "warning"
    assert events[0]["namespace"] == "twisted.test"
    assert events[1]["level"] == "error" and events[1]["error"] == "RuntimeError: bad"
