"""The circuit breaker of one upstream client: closed → open → half-open → closed."""

from __future__ import annotations

import enum
from collections.abc import Callable

from inferwatch.shared.http.policy import BreakerPolicy


class CircuitState(enum.StrEnum):
    """A breaker's state; ``gauge`` is its value on ``inferwatch_upstream_circuit_state``."""

    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"

    @property
    def gauge(self) -> int:
        """0 closed, 1 half-open, 2 open (higher is worse)."""
        return _GAUGE[self]


_GAUGE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


class Admission(enum.Enum):
    """What the breaker lets a call do."""

    CALL = "call"  # closed: a normal call, with its retries
    TRIAL = "trial"  # half-open: the one trial call (single attempt) that decides
    REFUSED = "refused"  # open (or a trial already in flight): fail fast


class CircuitBreaker:
    """Counts consecutive failed calls and fails fast while the upstream is known to be down.

    Args:
        policy: threshold and reset delay.
        clock: monotonic clock.
        on_change: told every state change (the client reports it to its metrics and logs).
    """

    def __init__(
        self,
        policy: BreakerPolicy,
        clock: Callable[[], float],
        on_change: Callable[[CircuitState, int], None],
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._on_change = on_change
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        """The state as a caller would find it now (an open circuit past its reset delay is half-open)."""
        if self._state is CircuitState.OPEN and self.seconds_until_trial() <= 0:
            return CircuitState.HALF_OPEN
        return self._state

    def seconds_until_trial(self) -> float:
        """How long until an open circuit lets a trial call through (<= 0: now)."""
        return self._opened_at + self._policy.reset_after_s - self._clock()

    def admit(self) -> Admission:
        """Decide whether a call may go out (a granted trial must be ended by :meth:`settle` or :meth:`abandon`)."""
        if self._state is CircuitState.CLOSED:
            return Admission.CALL
        if self._state is CircuitState.OPEN and self.seconds_until_trial() <= 0:
            self._set(CircuitState.HALF_OPEN)
        if self._state is CircuitState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return Admission.TRIAL
        return Admission.REFUSED

    def settle(self, success: bool, admission: Admission) -> None:
        """Feed one finished call's verdict (``success``: the upstream answered sanely)."""
        if admission is Admission.TRIAL:
            self._trial_in_flight = False
        if success:
            self._failures = 0
            if self._state is not CircuitState.CLOSED:
                self._set(CircuitState.CLOSED)
            return
        self._failures += 1
        if admission is Admission.TRIAL or (
            self._state is CircuitState.CLOSED and self._failures >= self._policy.failure_threshold
        ):
            self._opened_at = self._clock()
            self._set(CircuitState.OPEN)

    def abandon(self, admission: Admission) -> None:
        """A call was cancelled: release a half-open trial without judging the upstream."""
        if admission is Admission.TRIAL:
            self._trial_in_flight = False

    def _set(self, state: CircuitState) -> None:
        self._state = state
        self._on_change(state, self._failures)
