"""A DNS server for tests: SRV answers on loopback UDP from a record list the test changes."""

from __future__ import annotations

import asyncio


class SrvServer(asyncio.DatagramProtocol):
    """A tiny authoritative DNS server on loopback UDP answering SRV queries from a mutable record list."""

    def __init__(self) -> None:
        self.records: list[tuple[str, int]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        import dns.message
        import dns.rrset

        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        if self.records:
            response.answer.append(
                dns.rrset.from_text(
                    question.name, 5, "IN", "SRV", *(f"0 10 {port} {host}." for host, port in self.records)
                )
            )
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)
