"""Adopts the broker socket the supervisor passes as fd 3 and speaks gRPC over it
with grpclib, never reconnecting: the connection is the plugin's identity.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import threading

from grpclib.client import Channel
from grpclib.encoding.proto import _googleapis_available
from grpclib.protocol import H2Protocol

from .errors import NoBroker

# grpclib's first channel tries `import google.rpc.status_pb2` (googleapis, not
# shipped; the broker sends no status details). Asked now, while the SDK loads, the
# cached answer keeps that failed import out of the plugin's import record.
_googleapis_available()

BROKER_FD_ENV = "PLEXICHAT_BROKER_FD"
"""Environment variable naming the inherited broker fd (the supervisor sets 3)."""

DEFAULT_BROKER_FD = 3

_taken = threading.Lock()
_adopted = False


def broker_fd() -> int:
    raw = os.environ.get(BROKER_FD_ENV, str(DEFAULT_BROKER_FD)).strip()
    try:
        fd = int(raw)
    except ValueError:
        raise NoBroker(f"{BROKER_FD_ENV}={raw!r} is not a file descriptor number") from None
    if fd < 3:
        # stdio may be a Unix socket (journald): adopting it would hijack the log.
        raise NoBroker(f"{BROKER_FD_ENV}={fd}: fds 0-2 are stdio, never the broker")
    return fd


def adopt(fd: int) -> socket.socket:
    """The inherited fd as a socket, once per process, after checking what it is."""
    global _adopted
    with _taken:
        if _adopted:
            raise NoBroker(f"the broker fd {fd} was already adopted by this process")
        try:
            mode = os.fstat(fd).st_mode
        except OSError as err:
            raise NoBroker(
                f"fd {fd} is not open ({err.strerror}): run the plugin under the supervisor"
            ) from None
        if not stat.S_ISSOCK(mode):
            raise NoBroker(f"fd {fd} is not a socket: run the plugin under the supervisor")
        sock = socket.socket(fileno=fd)
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            sock.detach()
            raise NoBroker(f"fd {fd} is not a Unix stream socket")
        sock.setblocking(False)
        _adopted = True
        return sock


class SocketChannel(Channel):
    """A grpclib channel over one already-connected socket.

    grpclib dials a path or host itself; here the socket exists before the channel,
    so the connection is made from it, and only once: a lost broker connection ends
    the plugin instead of being redialled to something else.
    """

    def __init__(self, sock: socket.socket) -> None:
        # The authority grpclib sends; the broker ignores it.
        super().__init__(host="localhost", port=0)
        self._sock: socket.socket | None = sock

    async def _create_connection(self) -> H2Protocol:
        sock, self._sock = self._sock, None
        if sock is None:
            raise ConnectionError("the broker connection was lost; it is never redialled")
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_unix_connection(self._protocol_factory, sock=sock)
        return protocol
