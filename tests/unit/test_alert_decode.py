"""An Alert as the aggregator publishes it decodes back to the same event."""

from __future__ import annotations

from inferwatch.contracts import decode
from inferwatch.contracts.alert import Alert


def test_decode_of_published_alert_roundtrips() -> None:
    alert = Alert(
        source="abc",
        observed_at=1.0,
        collector="aggregator",
        name="VllmTargetDown",
        state="firing",
        labels={"target": "x"},
    )
    from inferwatch.contracts import encode

    assert decode(encode(alert)) == alert
