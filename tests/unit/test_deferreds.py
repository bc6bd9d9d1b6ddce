"""all_of: the join the inquiry engine and teletype use for their writes."""

from __future__ import annotations

import gc

from twisted.internet.defer import Deferred

from switch.deferreds import all_of


def test_fires_after_every_deferred() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    joined = all_of([a, b])
    a.callback(1)
    assert not joined.called
    b.callback(2)
    assert joined.called and joined.result is None
    assert all_of([]).called


def test_first_failure_itself_and_the_rest_consumed() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    c: Deferred[int] = Deferred()
    joined = all_of([a, b, c])
    b.errback(KeyError("first"))
    a.errback(ValueError("second"))
    assert not joined.called  # still waiting for c
    c.callback(3)
    failures: list[BaseException] = []
    joined.addErrback(lambda f: failures.append(f.value))
    assert [type(e) for e in failures] == [KeyError]
    # the other failure was consumed: nothing left unhandled on a, b or c
    for d in (a, b, c):
        assert d.result is None
    del a, b, c
    gc.collect()
