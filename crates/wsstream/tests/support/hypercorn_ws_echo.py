"""A WebSocket echo server on Hypercorn (an ASGI server with WebSockets over HTTP/2, RFC
8441), for the tests of wsstream's HTTP/2 client.

    python3 hypercorn_ws_echo.py [--cert FILE --key FILE]

With --cert/--key: TLS with ALPN h2 and http/1.1; without: cleartext (HTTP/1.1, and HTTP/2
with prior knowledge). Listens on 127.0.0.1, on a port the system picks, and prints
`PORT <port>` on stdout. Echoes text and binary messages; accepts the first subprotocol
offered.

Needs `python3 -m pip install hypercorn`.
"""

import asyncio
import socket
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    event = await receive()
    if event["type"] != "websocket.connect":
        return
    accept = {"type": "websocket.accept"}
    offered = scope.get("subprotocols") or []
    if offered:
        accept["subprotocol"] = offered[0]
    await send(accept)
    while True:
        event = await receive()
        if event["type"] == "websocket.receive":
            if event.get("text") is not None:
                await send({"type": "websocket.send", "text": event["text"]})
            else:
                await send({"type": "websocket.send", "bytes": event["bytes"]})
        elif event["type"] == "websocket.disconnect":
            return


def main():
    args = sys.argv[1:]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # Listening before the port is printed: a connection made then waits in the backlog.
    sock.listen(128)
    sock.set_inheritable(True)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    if "--cert" in args:
        config.certfile = args[args.index("--cert") + 1]
        config.keyfile = args[args.index("--key") + 1]
    config.accesslog = None
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    asyncio.run(serve(app, config))


if __name__ == "__main__":
    main()
