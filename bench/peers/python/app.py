"""The smallest Starlette app that answers the benchmark's POST, with or
without asgi-idempotency-header (its in-memory backend).

Run by idem-bench: ``python3 app.py with|without``, with the pinned packages
on PYTHONPATH. It binds a free loopback port itself (uvicorn cannot report
the port it got for port 0), prints ``peer listening on HOST:PORT``, and
serves with uvicorn in one process on uvloop and httptools, the fastest
setup uvicorn offers. The handler parses the JSON body, as an API would,
and answers the same ~100-byte charge object as idem's benchmark upstream.
"""

import signal
import socket
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

CHARGE = {
    "id": "ch_bench",
    "object": "charge",
    "amount": 1000,
    "currency": "usd",
    "status": "succeeded",
    "paid": True,
}


async def charge(request):
    await request.json()
    return JSONResponse(CHARGE)


middleware = []
if len(sys.argv) > 1 and sys.argv[1] == "with":
    from idempotency_header_middleware import IdempotencyHeaderMiddleware
    from idempotency_header_middleware.backends import MemoryBackend

    middleware.append(Middleware(IdempotencyHeaderMiddleware, backend=MemoryBackend()))

app = Starlette(
    routes=[Route("/v1/charges", charge, methods=["POST"])],
    middleware=middleware,
)

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
sock.listen(1024)
print(f"peer listening on 127.0.0.1:{sock.getsockname()[1]}", flush=True)

# uvicorn handles SIGTERM itself once it runs; before that, exit at once.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
config = uvicorn.Config(
    app,
    loop="uvloop",
    http="httptools",
    access_log=False,
    log_level="warning",
    lifespan="off",
)
uvicorn.Server(config).run(sockets=[sock])
