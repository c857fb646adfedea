"""A bare HTTP/1.1 client on an asyncio socket, for requests no polite client sends.

Oversized headers, encodings aiohttp cannot decode, bodies trickled a byte at a
time, connections dropped mid-body: aiohttp's own client will not do these.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class RawResponse:
    """One HTTP answer as it came over the wire; header names lower-cased."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def request_head(path: str, headers: dict[str, str], method: str = "POST") -> bytes:
    """``METHOD path HTTP/1.1`` and the headers, up to and including the blank line."""
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_response(reader: asyncio.StreamReader, timeout: float = 10.0) -> RawResponse:
    """The next answer on ``reader``: status line, headers, ``Content-Length`` bytes of body."""
    async with asyncio.timeout(timeout):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return RawResponse(int(status_line.split()[1]), headers, body)


async def exchange(port: int, data: bytes, timeout: float = 10.0) -> RawResponse:
    """Send ``data`` on a new connection to 127.0.0.1:``port`` and read one answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await read_response(reader, timeout)
    finally:
        writer.close()


async def closed_by_peer(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True when the other end closes (EOF or reset) within ``timeout``; data is skipped."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True
