"""Shared fixtures: the reactor, and failing any test that loses an error in a Deferred.

pytest, unlike trial, does not notice a Failure garbage-collected unhandled; this
fixture does (ENGINEERING.md, Tests).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.logger import globalLogPublisher


@pytest.fixture
def reactor() -> Any:
    from twisted.internet import reactor as _reactor

    return _reactor


@pytest.fixture(autouse=True)
def _fail_on_lost_errors() -> Iterator[None]:
    lost: list[str] = []

    def observer(event: dict[str, Any]) -> None:
        if event.get("log_failure") is not None and event.get("isError", True):
            fmt = event.get("log_format") or ""
            if "Unhandled error in Deferred" in fmt or event.get("log_namespace", "").startswith(
                "twisted.internet.defer"
            ):
                lost.append(str(event["log_failure"].getTraceback()))

    globalLogPublisher.addObserver(observer)
    try:
        yield
        gc.collect()
    finally:
        globalLogPublisher.removeObserver(observer)
    if lost:
        pytest.fail("error lost in a Deferred:\n" + "\n".join(lost))


# CI runs hypothesis derandomized (the same examples every run, so a red CI is always
# reproducible); developers' runs stay random and keep finding new cases.
def _hypothesis_profiles() -> None:
    import os

    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        settings.load_profile("ci")


_hypothesis_profiles()
