"""Wire encoding: msgpack by default, JSON for humans and other tools; both via msgspec.

The decoder tells the two apart by the first byte (a JSON object starts with ``{``; a msgpack map
never does), so publishers may choose per message and consumers need no header.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from inferwatch.contracts.registry import AnyEvent

Encoding = Literal["msgpack", "json"]

_msgpack_encoder = msgspec.msgpack.Encoder()
_json_encoder = msgspec.json.Encoder()
_msgpack_decoder: msgspec.msgpack.Decoder[AnyEvent] = msgspec.msgpack.Decoder(AnyEvent)
_json_decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)


class DecodeError(ValueError):
    """A message that is not a valid inferwatch event (bad bytes, unknown type, wrong fields)."""


def encode(event: msgspec.Struct, encoding: Encoding = "msgpack") -> bytes:
    """Encode one event for the wire."""
    if encoding == "json":
        return _json_encoder.encode(event)
    return _msgpack_encoder.encode(event)


def decode(data: bytes) -> AnyEvent:
    """Decode one event from msgpack or JSON bytes.

    Raises:
        DecodeError: the bytes are not a known, valid event.
    """
    try:
        if data[:1] == b"{":
            return _json_decoder.decode(data)
        return _msgpack_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DecodeError(str(exc)) from None
