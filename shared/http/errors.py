"""What a failed upstream call raises: secret-free by construction."""

from __future__ import annotations

from typing import Any

from inferwatch.shared.http.outcomes import Outcome


class UpstreamError(Exception):
    """Raised for any failed upstream call after retries.

    The message and ``repr`` hold only the api, the endpoint template, the outcome, the HTTP status and
    the attempt count: never headers, URL userinfo or query strings. The underlying transport exception
    (if any) is chained as ``__cause__`` for debugging; its text comes from the network stack (e.g.
    ``[Errno 111] Connection refused``), not from the request.

    Attributes:
        api: upstream kind given to the client (``vllm``, ``litellm``…).
        endpoint: the caller's bounded route template (``/v1/models``).
        outcome: how the call ended (an :class:`Outcome`, never ``Outcome.OK``).
        status: HTTP status of the last response, if there was one.
        retry_after_s: seconds the upstream asked us to wait (``Retry-After``), or until the circuit
            half-opens for :class:`CircuitOpen`.
        attempts: how many attempts were made (0 for :class:`CircuitOpen`).
    """

    def __init__(
        self,
        api: str,
        endpoint: str,
        outcome: Outcome,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        attempts: int = 1,
    ) -> None:
        self.api = api
        self.endpoint = endpoint
        self.outcome = Outcome(outcome)
        self.status = status
        self.retry_after_s = retry_after_s
        self.attempts = attempts
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"{self.api} {self.endpoint}: {self.outcome}"
        if self.status is not None:
            text += f" (HTTP {self.status})"
        if self.retry_after_s is not None:
            text += f", retry after {self.retry_after_s:.3g}s"
        return text + f" after {self.attempts} attempt{'s' if self.attempts != 1 else ''}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(api={self.api!r}, endpoint={self.endpoint!r}, "
            f"outcome={self.outcome.value!r}, status={self.status!r}, retry_after_s={self.retry_after_s!r}, "
            f"attempts={self.attempts!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # keep it picklable despite the keyword-only constructor
        return (
            _rebuild_error,
            (type(self), self.api, self.endpoint, self.outcome.value, self.status, self.retry_after_s, self.attempts),
        )


def _rebuild_error(
    cls: type[UpstreamError],
    api: str,
    endpoint: str,
    outcome: str,
    status: int | None,
    retry_after_s: float | None,
    attempts: int,
) -> UpstreamError:
    return cls(api, endpoint, Outcome(outcome), status=status, retry_after_s=retry_after_s, attempts=attempts)


class CircuitOpen(UpstreamError):  # noqa: N818 (public name fixed by the API)
    """The client's circuit breaker is open: the call failed fast without any network I/O.

    ``outcome`` is ``Outcome.CIRCUIT_OPEN``; ``retry_after_s`` is how long until the breaker lets a trial through.
    """


class AttemptError(Exception):
    """One failed attempt, inside the client (callers only ever see :class:`UpstreamError`)."""

    def __init__(self, outcome: Outcome, status: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(outcome.value)
        self.outcome = outcome
        self.status = status
        self.retry_after_s = retry_after_s
