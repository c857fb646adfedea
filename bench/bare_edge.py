"""Baselines B1 and B1': a bare aiohttp handler that reads the body and answers 202.

``python bench/bare_edge.py PORT`` is B1 (nothing else). ``... PORT REDIS_URL STREAM``
is B1': the handler first does one ``XADD`` of the raw body to that stream on the
same Redis the edge uses, the durable append a 202 needs, with nothing of ours around it
(no validation, no keys, no group commit).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

CLIENT = web.AppKey("client", aioredis.Redis)
STREAM = web.AppKey("stream", str)
ACCEPTED = b'{"status":"accepted"}'


async def bare(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=202, body=ACCEPTED, content_type="application/json")


async def with_xadd(request: web.Request) -> web.Response:
    body = await request.read()
    await request.app[CLIENT].xadd(request.app[STREAM], {b"e": body})
    return web.Response(status=202, body=ACCEPTED, content_type="application/json")


def make_app(argv: list[str]) -> web.Application:
    app = web.Application()
    if len(argv) > 2:
        url, stream = argv[2], argv[3]

        async def client(app: web.Application) -> AsyncIterator[None]:
            app[CLIENT] = aioredis.Redis.from_url(url)
            app[STREAM] = stream
            try:
                yield
            finally:
                await app[CLIENT].aclose()

        app.cleanup_ctx.append(client)
        app.router.add_post("/{tail:.*}", with_xadd)
    else:
        app.router.add_post("/{tail:.*}", bare)
    return app


def main(argv: list[str]) -> None:
    # Same event loop as the edge (python -m web), so the ratio compares handlers, not loops.
    try:
        import uvloop
    except ImportError:
        loop = None
    else:
        loop = uvloop.new_event_loop()
    web.run_app(
        make_app(argv),
        host="127.0.0.1",
        port=int(argv[1]),
        access_log=None,
        print=None,
        loop=loop,
    )


if __name__ == "__main__":
    main(sys.argv)
