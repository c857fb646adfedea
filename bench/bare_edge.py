"""Baseline B1: a bare aiohttp handler that reads the body and answers 202."""

import sys

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=202, body=b'{"status":"accepted"}', content_type="application/json")


app = web.Application()
app.router.add_post("/{tail:.*}", handle)
# Same event loop as the edge (python -m web), so the ratio compares handlers, not loops.
try:
    import uvloop
except ImportError:
    loop = None
else:
    loop = uvloop.new_event_loop()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, loop=loop)
