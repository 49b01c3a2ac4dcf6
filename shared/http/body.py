"""Reading an answer safely: bounded decompression, ``Retry-After``, redirect origins."""

from __future__ import annotations

import email.utils
import math
import zlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

import httpx

from inferwatch.shared.http.errors import AttemptError
from inferwatch.shared.http.outcomes import Outcome


class BoundedDecoder:
    """Undo ``Content-Encoding`` (identity, gzip, deflate) without ever producing more than asked."""

    def __init__(self, encoding: str) -> None:
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip().lower() not in ("", "identity")]
        self._deflate_probe = False
        self._z: Any = None
        if not codings:
            return
        if len(codings) > 1 or codings[0] not in ("gzip", "x-gzip", "deflate"):
            raise AttemptError(Outcome.INVALID_BODY)  # we only advertise gzip and deflate
        if codings[0] == "deflate":
            self._z = zlib.decompressobj()
            self._deflate_probe = True  # some servers send raw deflate without the zlib wrapper
        else:
            self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)

    def feed(self, data: bytes, limit: int) -> bytes:
        """Decode ``data``; returns at most ``limit`` bytes (exactly ``limit`` when more would follow)."""
        if self._z is None:
            return data
        try:
            out: bytes = self._z.decompress(data, limit)
        except zlib.error as exc:
            if not self._deflate_probe:
                raise AttemptError(Outcome.INVALID_BODY) from exc
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            self._deflate_probe = False
            return self.feed(data, limit)
        self._deflate_probe = False
        return out

    def flush(self) -> bytes:
        """Whatever the decompressor still holds at the end of the stream."""
        if self._z is None:
            return b""
        try:
            return bytes(self._z.flush())
        except zlib.error as exc:
            raise AttemptError(Outcome.INVALID_BODY) from exc


async def read_capped(upstream: httpx.Response, cap: int) -> bytes:
    """Stream the body, undoing Content-Encoding, and stop as soon as it exceeds ``cap`` decoded bytes."""
    if too_long(upstream.headers.get("content-length"), cap):
        raise AttemptError(Outcome.TOO_LARGE, upstream.status_code)
    if upstream.is_stream_consumed:  # built from bytes and already read (httpx.MockTransport in tests)
        if len(upstream.content) > cap:
            raise AttemptError(Outcome.TOO_LARGE, upstream.status_code)
        return upstream.content
    return await read_decoded(
        upstream.aiter_raw(), upstream.headers.get("content-encoding", ""), cap, upstream.status_code
    )


def too_long(content_length: str | None, cap: int) -> bool:
    """Whether a declared ``Content-Length`` is already over the cap (the body is then never read)."""
    return content_length is not None and content_length.strip().isdigit() and int(content_length) > cap


async def read_decoded(raw: AsyncIterator[bytes], encoding: str, cap: int, status: int) -> bytes:
    """Read raw body chunks, undoing ``encoding``, failing with ``too_large`` as soon as more than ``cap`` bytes
    decode (so neither a huge body nor a gzip bomb is buffered beyond the cap plus one chunk)."""
    decoder = BoundedDecoder(encoding)
    chunks: list[bytes] = []
    size = 0
    async for chunk in raw:
        piece = decoder.feed(chunk, cap - size + 1)
        size += len(piece)
        if size > cap:
            raise AttemptError(Outcome.TOO_LARGE, status)
        if piece:
            chunks.append(piece)
    tail = decoder.flush()
    size += len(tail)
    if size > cap:
        raise AttemptError(Outcome.TOO_LARGE, status)
    if not chunks:
        return tail
    if tail:
        chunks.append(tail)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def retry_after_s(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP-date; None when absent or garbled."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


class Origin(Protocol):
    """What :func:`same_origin` reads of a URL (``httpx.URL`` and ``yarl.URL`` both have it)."""

    @property
    def scheme(self) -> str: ...
    @property
    def host(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...


def same_origin(origin: Origin, target: Origin) -> bool:
    """Same scheme, host and port, or the same host upgraded from http to https."""
    if origin.host != target.host:
        return False
    if origin.scheme == target.scheme:
        return origin.port == target.port
    return origin.scheme == "http" and target.scheme == "https"
