"""`Patience`: how long an operation rides out an API server that does not answer."""

from __future__ import annotations

from datetime import timedelta

import pytest

from canaryflow.clock import ManualClock
from canaryflow.cluster.outages import MAX_BACKOFF_SECONDS, Patience, describe_duration
from canaryflow.errors import ClusterOutageError, ClusterUnavailableError, ConflictError


class Server:
    """Down until `back_at` on the clock (then answers 'ok'); records when it was asked."""

    def __init__(self, clock: ManualClock, back_at: float, retry_after: float | None = None) -> None:
        self.clock, self.back_at, self.retry_after = clock, back_at, retry_after
        self.asked: list[float] = []

    def __call__(self) -> str:
        self.asked.append(self.clock.monotonic())
        if self.clock.monotonic() < self.back_at:
            raise ClusterUnavailableError("connection refused", retry_after=self.retry_after)
        return "ok"


def test_an_outage_shorter_than_the_tolerance_is_ridden_out_with_growing_backoff() -> None:
    clock = ManualClock()
    server = Server(clock, back_at=45.0)
    waiting: list[str] = []
    patience = Patience(
        clock, timedelta(minutes=1), what="a test", on_outage=lambda e: waiting.append(str(e))
    )

    assert patience.call(server) == "ok"

    gaps = [b - a for a, b in zip(server.asked, server.asked[1:], strict=False)]
    assert gaps[:5] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert max(gaps) == MAX_BACKOFF_SECONDS
    assert 45.0 <= server.asked[-1] < 45.0 + MAX_BACKOFF_SECONDS  # answered within one backoff of its return
    assert waiting == ["connection refused"]  # told once, when the outage began
    assert (patience.outages, patience.lost) == (1, server.asked[-1])


def test_an_outage_longer_than_the_tolerance_raises_with_how_long_it_lasted() -> None:
    clock = ManualClock()
    patience = Patience(clock, timedelta(seconds=30), what="the split of step 1")

    with pytest.raises(
        ClusterOutageError, match=r"did not answer for 30s during the split of step 1"
    ) as info:
        patience.call(Server(clock, back_at=1000.0))

    assert info.value.outage_seconds == 30.0
    assert "(apiOutageTolerance 30s); last error: connection refused" in str(info.value)
    assert clock.monotonic() == 30.0  # it never slept past its tolerance


def test_an_answer_ends_the_outage_so_each_outage_gets_the_whole_tolerance() -> None:
    clock = ManualClock()
    patience = Patience(clock, timedelta(seconds=20), what="a test")

    for _ in range(3):  # three outages of 15 s: 45 s in all, more than the tolerance, each shorter
        assert patience.call(Server(clock, back_at=clock.monotonic() + 15.0)) == "ok"

    assert patience.outages == 3
    assert patience.lost >= 45.0


def test_a_longer_retry_after_from_the_server_is_honoured() -> None:
    clock = ManualClock()
    server = Server(clock, back_at=7.0, retry_after=7.0)

    Patience(clock, timedelta(minutes=1), what="a test").call(server)

    assert server.asked == [0.0, 7.0]


def test_zero_tolerance_gives_up_at_once_and_other_errors_pass_through() -> None:
    clock = ManualClock()
    with pytest.raises(ClusterOutageError):
        Patience(clock, timedelta(0), what="a test").call(Server(clock, back_at=1.0))
    assert clock.monotonic() == 0.0

    def conflict() -> None:
        raise ConflictError("409")

    with pytest.raises(ConflictError):
        Patience(clock, timedelta(minutes=1), what="a test").call(conflict)
    with pytest.raises(ValueError, match="negative"):
        Patience(clock, timedelta(seconds=-1), what="a test")


def test_an_inner_operation_whose_patience_is_spent_is_not_retried_by_an_outer_one() -> None:
    clock = ManualClock()
    inner = Patience(clock, timedelta(seconds=5), what="inner")
    outer = Patience(clock, timedelta(minutes=10), what="outer")
    server = Server(clock, back_at=1000.0)

    with pytest.raises(ClusterOutageError, match="during inner"):
        outer.call(lambda: inner.call(server))
    assert clock.monotonic() == 5.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (180, "3m"), (150, "2m30s"), (3600, "1h"), (3725.4, "1h2m5s")],
)
def test_durations_are_written_as_specs_write_them(seconds: float, text: str) -> None:
    assert describe_duration(seconds) == text
