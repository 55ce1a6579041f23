"""A broker double for the SDK's own tests: a grpclib server on a Unix socket that
answers like the supervisor's broker for a scripted set of grants and rows.
"""

from __future__ import annotations

import asyncio
import queue
import socket
import threading
from pathlib import Path
from typing import Any

from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Server, Stream

from plexichat_plugin._proto import broker_pb2 as pb
from plexichat_plugin._proto.broker_grpc import BrokerBase


class FakeBroker(BrokerBase):
    """Records every call in `calls`; `push()` sends host messages down the session."""

    def __init__(self, grants: dict[str, list[str]], rows: list[list[int]]) -> None:
        self.grants = grants
        self.rows = rows
        self.calls: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._session: asyncio.Queue[pb.HostMessage | None] | None = None

    def push(self, message: pb.HostMessage) -> None:
        assert self.loop is not None and self._session is not None
        self.loop.call_soon_threadsafe(self._session.put_nowait, message)

    def wait(self, method: str, timeout: float = 10) -> Any:
        """The next recorded call of `method` (others are skipped)."""
        while True:
            name, request = self.calls.get(timeout=timeout)
            if name == method:
                return request

    async def _record(self, name: str, stream: Stream[Any, Any]) -> Any:
        request = await stream.recv_message()
        self.calls.put((name, request))
        return request

    async def Handshake(self, stream: Stream[Any, Any]) -> None:
        request = await self._record("Handshake", stream)
        await stream.send_message(
            pb.HandshakeResponse(
                protocol_version=1,
                plugin_name="hello-py",
                plugin_version="0.1.0",
                grants=[pb.Grant(permission=p, scope=s) for p, s in self.grants.items()],
                emit_prefix="plugin.hello-py.",
                max_message_bytes=1 << 20,
            )
        )
        assert request.protocol_versions == [1]

    async def Session(self, stream: Stream[Any, Any]) -> None:
        await self._record("Session", stream)
        self._session = asyncio.Queue()
        while (message := await self._session.get()) is not None:
            await stream.send_message(message)

    async def _ack(self, name: str, stream: Stream[Any, Any], answer: Any) -> None:
        await self._record(name, stream)
        await stream.send_message(answer)

    async def Reply(self, stream: Stream[Any, Any]) -> None:
        await self._ack("Reply", stream, pb.ReplyAck())

    async def Pong(self, stream: Stream[Any, Any]) -> None:
        await self._ack("Pong", stream, pb.PongAck())

    async def Subscribe(self, stream: Stream[Any, Any]) -> None:
        request = await self._record("Subscribe", stream)
        await stream.send_message(pb.SubscribeResponse(topics=request.topics))

    async def EmitEvent(self, stream: Stream[Any, Any]) -> None:
        request = await self._record("EmitEvent", stream)
        if not request.topic.startswith("plugin.hello-py."):
            raise GRPCError(Status.PERMISSION_DENIED, f"may not emit {request.topic}")
        await stream.send_message(pb.EmitEventResponse(id="evt-1"))

    async def Log(self, stream: Stream[Any, Any]) -> None:
        await self._ack("Log", stream, pb.LogResponse())

    async def HasPermission(self, stream: Stream[Any, Any]) -> None:
        request = await self._record("HasPermission", stream)
        await stream.send_message(
            pb.HasPermissionResponse(granted=request.permission in self.grants)
        )

    async def Query(self, stream: Stream[Any, Any]) -> None:
        request = await self._record("Query", stream)
        if "messages" in request.sql and "messages" not in self.grants.get("database_read", []):
            raise GRPCError(
                Status.PERMISSION_DENIED, "database_read is not granted for table `messages`"
            )
        await stream.send_message(
            pb.QueryResponse(
                columns=["n"],
                rows=[pb.SqlRow(values=[pb.SqlValue(integer=v) for v in r]) for r in self.rows],
            )
        )

    async def _unimplemented(self, stream: Stream[Any, Any]) -> None:
        raise GRPCError(Status.UNIMPLEMENTED, "not in the fake broker")

    GetConfig = SetConfig = ReadFile = WriteFile = ListDir = StatPath = _unimplemented
    RemovePath = MakeDir = HostAction = Http = Execute = _unimplemented


class Running:
    """The fake broker served on its own thread and loop, at `path`."""

    def __init__(self, broker: FakeBroker, path: Path) -> None:
        self.broker = broker
        self.path = path
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.broker.loop = loop
        server = Server([self.broker])
        loop.run_until_complete(server.start(path=str(self.path)))
        ready.set()
        loop.run_forever()

    def connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(self.path))
        return sock
