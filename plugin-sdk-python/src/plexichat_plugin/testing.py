"""Test a plugin without root or a supervisor: `TestBroker` scripts grants, files,
rows, HTTP answers and config, and runs the plugin's real handlers against it.

The fake broker is a real `plexichat.broker.v1` gRPC server (grpclib, on a Unix
socket in a temporary directory), so the plugin goes through the same handshake,
subscriptions, session stream and calls as under the supervisor. It applies the
broker's rules to what you script: a call no grant covers is PermissionDenied with
the broker's kind of message; `/data` is always the plugin's; paths must be absolute
and normalised. It does not run SQL (a query answers the rows scripted for it, writes
are recorded), resolve hosts, or enforce quotas and rate limits.

    broker = TestBroker("hello").grant("database_read", ["messages"])
    broker.rows("SELECT COUNT(*) AS n FROM messages", [{"n": 42}])
    with broker.start(plugin) as running:
        assert running.invoke("count") == b"42"
"""

from __future__ import annotations

import asyncio
import itertools
import posixpath
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Server, Stream

from ._proto import broker_pb2 as pb
from ._proto.broker_grpc import BrokerBase
from .errors import PluginError
from .imports import MAX_ORIGIN_BYTES, MAX_PER_REPORT, is_module_name
from .plugin import Plugin, topic_matches
from .services import _python_value

SENSITIVE = ("user.", "moderation.", "chat.private.")
# The broker keeps this many imported names per run and counts the rest.
MAX_IMPORTS_PER_RUN = 1024
# How long a test waits for the plugin to answer one message.
ANSWER_SECONDS = 10.0


def _deny(what: str) -> GRPCError:
    return GRPCError(Status.PERMISSION_DENIED, what)


def _normalised(path: str) -> str:
    if not path.startswith("/") or posixpath.normpath(path) != path.rstrip("/") or "//" in path:
        raise GRPCError(Status.INVALID_ARGUMENT, f"path `{path}` must be absolute and normalised")
    return path


async def _recv(stream: Stream[Any, Any]) -> Any:
    request = await stream.recv_message()
    if request is None:
        raise GRPCError(Status.INVALID_ARGUMENT, "no request message")
    return request


def _covers_path(prefix: str, path: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _covers_host(entry: str, host: str, port: int) -> bool:
    name, _, want_port = entry.removeprefix("private:").partition(":")
    if want_port and int(want_port) != port:
        return False
    if not want_port and port not in (80, 443):
        return False
    if name.startswith("*."):
        return host.endswith(name[1:])
    return host == name


_TABLES = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE)\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)


@dataclass(frozen=True)
class HostCall:
    permission: str
    target: str
    action: str
    payload: bytes


@dataclass
class _Script:
    name: str
    version: str = "0.1.0"
    grants: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    http: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)
    host_results: dict[tuple[str, str], bytes] = field(default_factory=dict)


class TestBroker:
    """What the broker holds for the plugin under test; `start(plugin)` runs it."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str) -> None:
        self._script = _Script(name)

    def version(self, version: str) -> TestBroker:
        self._script.version = version
        return self

    def grant(self, permission: str, scope: Iterable[str] = ()) -> TestBroker:
        self._script.grants[permission] = list(scope)
        return self

    def file(self, path: str, data: bytes | str) -> TestBroker:
        self._script.files[path] = data.encode() if isinstance(data, str) else data
        return self

    def rows(self, sql: str, rows: list[dict[str, Any]]) -> TestBroker:
        """What the query `sql` (exactly) answers, once the grants allow it."""
        self._script.rows[sql] = rows
        return self

    def http(self, url: str, status: int, body: bytes | str) -> TestBroker:
        self._script.http[url] = (status, body.encode() if isinstance(body, str) else body)
        return self

    def config(self, key: str, value: str) -> TestBroker:
        self._script.config[key] = value
        return self

    def host_result(self, permission: str, target: str, result: bytes | str) -> TestBroker:
        raw = result.encode() if isinstance(result, str) else result
        self._script.host_results[(permission, target)] = raw
        return self

    def start(self, plugin: Plugin) -> Running:
        """Runs `plugin`'s handlers in this process against the broker."""
        return Running(self._script, plugin)

    def serve(self) -> Served:
        """Only the broker: hand `connect()`'s socket to a plugin process as its fd."""
        return Served(self._script)


class _Fake(BrokerBase):
    """The broker's side, applying the broker's rules to the script."""

    def __init__(self, script: _Script, running: Served) -> None:
        self.s = script
        self.r = running
        self.session: asyncio.Queue[pb.HostMessage] = asyncio.Queue()
        self.replies: dict[str, asyncio.Future[pb.CommandReply]] = {}

    def _scope(self, permission: str, what: str) -> list[str]:
        if permission not in self.s.grants:
            raise _deny(f"{permission} is not granted to plugin `{self.s.name}` ({what})")
        return self.s.grants[permission]

    async def Handshake(self, stream: Stream[Any, Any]) -> None:
        await _recv(stream)
        grants = [pb.Grant(permission=p, scope=s) for p, s in self.s.grants.items()]
        await stream.send_message(
            pb.HandshakeResponse(
                protocol_version=1,
                plugin_name=self.s.name,
                plugin_version=self.s.version,
                grants=grants,
                emit_prefix=f"plugin.{self.s.name}.",
                max_message_bytes=1 << 20,
            )
        )

    async def Session(self, stream: Stream[Any, Any]) -> None:
        await _recv(stream)
        self.r._session_open.set()
        while True:
            await stream.send_message(await self.session.get())

    async def Reply(self, stream: Stream[Any, Any]) -> None:
        reply = await _recv(stream)
        future = self.replies.pop(reply.invocation_id, None)
        if future is not None and not future.done():
            future.set_result(reply)
        await stream.send_message(pb.ReplyAck())

    async def Pong(self, stream: Stream[Any, Any]) -> None:
        self.r.pongs.append((await _recv(stream)).id)
        await stream.send_message(pb.PongAck())

    async def Subscribe(self, stream: Stream[Any, Any]) -> None:
        request = await _recv(stream)
        for topic in request.topics:
            if topic.startswith(SENSITIVE) and "sensitive_events" not in self.s.grants:
                raise _deny(f"subscribing to `{topic}` needs sensitive_events")
        self.r.subscriptions.extend(request.topics)
        await stream.send_message(pb.SubscribeResponse(topics=request.topics))

    async def EmitEvent(self, stream: Stream[Any, Any]) -> None:
        request = await _recv(stream)
        prefix = f"plugin.{self.s.name}."
        if not request.topic.startswith(prefix):
            raise _deny(f"plugin `{self.s.name}` may emit only under `{prefix}`")
        self.r.emitted.append((request.topic, bytes(request.payload)))
        await stream.send_message(pb.EmitEventResponse(id=f"event-{len(self.r.emitted)}"))

    async def GetConfig(self, stream: Stream[Any, Any]) -> None:
        request = await _recv(stream)
        value = self.s.config.get(request.key)
        await stream.send_message(pb.GetConfigResponse(found=value is not None, value=value or ""))

    async def SetConfig(self, stream: Stream[Any, Any]) -> None:
        request = await _recv(stream)
        self.s.config[request.key] = request.value
        await stream.send_message(pb.SetConfigResponse())

    async def Log(self, stream: Stream[Any, Any]) -> None:
        request = await _recv(stream)
        self.r.logs.append((pb.LogLevel.Name(request.level), request.message))
        await stream.send_message(pb.LogResponse())

    async def ReportImports(self, stream: Stream[Any, Any]) -> None:
        request = await _recv(stream)
        if len(request.modules) > MAX_PER_REPORT:
            raise GRPCError(
                Status.INVALID_ARGUMENT,
                f"{len(request.modules)} modules in one report; at most {MAX_PER_REPORT}",
            )
        for i, m in enumerate(request.modules):
            if not is_module_name(m.name):
                raise GRPCError(
                    Status.INVALID_ARGUMENT, f"modules[{i}].name {m.name!r} is not a module name"
                )
            if len(m.origin.encode()) > MAX_ORIGIN_BYTES or "\0" in m.origin:
                raise GRPCError(
                    Status.INVALID_ARGUMENT, f"modules[{i}].origin is over 1024 bytes or has a NUL"
                )
        self.r.import_reports += 1
        recorded = over_cap = 0
        known = {name for name, _ in self.r.imports}
        for m in request.modules:
            if m.name in known:
                continue
            if len(self.r.imports) >= MAX_IMPORTS_PER_RUN:
                over_cap += 1
                continue
            known.add(m.name)
            self.r.imports.append((m.name, m.origin))
            recorded += 1
        await stream.send_message(pb.ReportImportsResponse(recorded=recorded, over_cap=over_cap))

    async def HasPermission(self, stream: Stream[Any, Any]) -> None:
        request = await _recv(stream)
        scope = self.s.grants.get(request.permission)
        granted = scope is not None and (not request.scope or request.scope in scope)
        await stream.send_message(pb.HasPermissionResponse(granted=granted))

    def _check_file(self, path: str, write: bool) -> str:
        path = _normalised(path)
        if _covers_path("/data", path):
            return path
        permission = "file_write" if write else "file_read"
        if not any(_covers_path(p, path) for p in self._scope(permission, path)):
            raise _deny(f"{permission} does not cover `{path}`")
        return path

    async def ReadFile(self, stream: Stream[Any, Any]) -> None:
        request = await _recv(stream)
        path = self._check_file(request.path, write=False)
        if path not in self.s.files:
            raise GRPCError(Status.NOT_FOUND, f"`{path}` does not exist")
        data = self.s.files[path]
        chunk = data[request.offset : request.offset + 512 * 1024]
        eof = request.offset + len(chunk) >= len(data)
        await stream.send_message(pb.ReadFileResponse(data=chunk, eof=eof, size=len(data)))

    async def WriteFile(self, stream: Stream[Any, Any]) -> None:
        request = await _recv(stream)
        path = self._check_file(request.path, write=True)
        before = self.s.files.get(path, b"") if request.append else b""
        self.s.files[path] = before + bytes(request.data)
        await stream.send_message(pb.WriteFileResponse(size=len(self.s.files[path])))

    async def ListDir(self, stream: Stream[Any, Any]) -> None:
        request = await _recv(stream)
        path = self._check_file(request.path, write=False).rstrip("/")
        names = sorted(
            {p[len(path) + 1 :].split("/")[0] for p in self.s.files if p.startswith(path + "/")}
        )
        entries = [pb.DirEntry(name=n, kind="file", size=0) for n in names]
        await stream.send_message(pb.ListDirResponse(entries=entries))

    async def Query(self, stream: Stream[Any, Any]) -> None:
        request = await _recv(stream)
        write = request.sql.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE")
        writable = self.s.grants.get("database_write", [])
        # As the broker: a table the plugin may write it may also read.
        readable = self.s.grants.get("database_read", []) + writable
        permission = "database_write" if write else "database_read"
        for table in _TABLES.findall(request.sql):
            if table not in (writable if write else readable):
                raise _deny(f"{permission} is not granted for table `{table}`")
        if write:
            self.r.db_writes.append(request.sql)
            self.r.db_write_params.append([_python_value(v) for v in request.params])
            await stream.send_message(pb.QueryResponse(rows_affected=1))
            return
        rows = self.s.rows.get(request.sql, [])
        columns = list(rows[0]) if rows else []
        await stream.send_message(
            pb.QueryResponse(
                columns=columns,
                rows=[pb.SqlRow(values=[_sql(row[c]) for c in columns]) for row in rows],
            )
        )

    async def HostAction(self, stream: Stream[Any, Any]) -> None:
        r = await _recv(stream)
        wanted = f"{r.target}:{r.action}" if r.action else r.target
        if wanted not in self._scope(r.permission, wanted):
            raise _deny(f"{r.permission} does not cover `{wanted}`")
        self.r.host_calls.append(HostCall(r.permission, r.target, r.action, bytes(r.payload)))
        result = self.s.host_results.get((r.permission, r.target), b"")
        await stream.send_message(pb.HostActionResponse(result=result))

    async def Http(self, stream: Stream[Any, Any]) -> None:
        request = await _recv(stream)
        m = re.match(r"^(https?)://([^/:]+)(?::(\d+))?", request.url)
        if m is None:
            raise GRPCError(Status.INVALID_ARGUMENT, f"`{request.url}` is not an http(s) URL")
        port = int(m.group(3) or (443 if m.group(1) == "https" else 80))
        scope = self._scope("network_outbound", request.url)
        if not any(_covers_host(e, m.group(2), port) for e in scope):
            raise _deny(f"network_outbound does not cover `{m.group(2)}:{port}`")
        self.r.http_calls.append(request.url)
        if request.url not in self.s.http:
            raise GRPCError(Status.UNAVAILABLE, f"no answer scripted for {request.url}")
        status, body = self.s.http[request.url]
        await stream.send_message(pb.HttpResponse(status=status, body=body, url=request.url))

    async def Execute(self, stream: Stream[Any, Any]) -> None:
        request = await _recv(stream)
        argv = " ".join(request.argv)
        entries = self._scope("execute_commands", argv)
        if not any(argv == e or (e.endswith(" ...") and argv.startswith(e[:-3])) for e in entries):
            raise _deny(f"execute_commands does not cover `{argv}`")
        await stream.send_message(pb.ExecuteResponse(exited=True, exit_code=0))

    async def _unscripted(self, stream: Stream[Any, Any]) -> None:
        raise GRPCError(Status.UNIMPLEMENTED, "not in the test broker")

    StatPath = RemovePath = MakeDir = _unscripted


def _sql(value: Any) -> pb.SqlValue:
    if value is None:
        return pb.SqlValue(null=True)
    if isinstance(value, bool | int):
        return pb.SqlValue(integer=int(value))
    if isinstance(value, float):
        return pb.SqlValue(real=value)
    if isinstance(value, bytes):
        return pb.SqlValue(blob=value)
    return pb.SqlValue(text=str(value))


class Served:
    """The test broker serving on its own thread, for a plugin that connects to it:
    in-process (`TestBroker.start`) or a child process given `connect()`'s socket as
    its broker fd (`TestBroker.serve`). What the plugin did is recorded here."""

    def __init__(self, script: _Script) -> None:
        self.emitted: list[tuple[str, bytes]] = []
        self.logs: list[tuple[str, str]] = []
        self.db_writes: list[str] = []
        self.db_write_params: list[list[Any]] = []
        """The bound parameters of each write, beside `db_writes`."""
        self.http_calls: list[str] = []
        self.host_calls: list[HostCall] = []
        self.subscriptions: list[str] = []
        self.pongs: list[int] = []
        self.imports: list[tuple[str, str]] = []
        """(module, origin) as ReportImports recorded them, each name once, in order."""
        self.import_reports = 0
        self._session_open = threading.Event()
        self._calls = itertools.count()
        self._dir = tempfile.TemporaryDirectory(prefix="plexichat-test-broker-")
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._fake = _Fake(script, self)
        self._broker = threading.Thread(target=self._serve_broker, daemon=True)
        self._broker.start()
        if not self._ready.wait(ANSWER_SECONDS):
            raise RuntimeError("the test broker did not start")

    @property
    def _path(self) -> str:
        return str(Path(self._dir.name) / "broker.sock")

    def _serve_broker(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = Server([self._fake])
        self._loop.run_until_complete(server.start(path=self._path))
        self._ready.set()
        self._loop.run_forever()
        # Stopped by close(): end the handlers still streaming (a session) here, on
        # their loop, rather than leave them to be destroyed pending at exit.
        server.close()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    def connect(self) -> socket.socket:
        """A new connection to the broker: what a plugin gets as its fd 3."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self._path)
        return sock

    def wait_session(self, timeout: float = ANSWER_SECONDS) -> None:
        """Waits until the plugin has handshaken, subscribed and opened its session."""
        if not self._session_open.wait(timeout):
            raise TimeoutError(f"the plugin did not open its session within {timeout}s")

    def _push(self, message: pb.HostMessage) -> None:
        self._loop.call_soon_threadsafe(self._fake.session.put_nowait, message)

    def invoke(self, command: str, args: bytes | str = b"") -> bytes:
        """Runs the command's handler; its output, or PluginError with its error."""
        call_id = f"call-{next(self._calls)}"

        async def register() -> pb.CommandReply:
            future: asyncio.Future[pb.CommandReply] = self._loop.create_future()
            self._fake.replies[call_id] = future
            await self._fake.session.put(
                pb.HostMessage(
                    invoke=pb.CommandInvocation(
                        invocation_id=call_id,
                        command=command,
                        args=args.encode() if isinstance(args, str) else args,
                    )
                )
            )
            return await future

        reply = asyncio.run_coroutine_threadsafe(register(), self._loop).result(ANSWER_SECONDS)
        if not reply.ok:
            raise PluginError(reply.error)
        return bytes(reply.output)

    def publish(self, topic: str, payload: bytes | str = b"", source: str = "server") -> bool:
        """Delivers an event as the broker would: only if the plugin subscribed to it
        (and, for a sensitive topic, holds sensitive_events). Whether it was sent."""
        if not any(topic_matches(p, topic) for p in self.subscriptions):
            return False
        if topic.startswith(SENSITIVE) and "sensitive_events" not in self._fake.s.grants:
            return False
        raw = payload.encode() if isinstance(payload, str) else payload
        event = pb.Event(id=f"ev-{next(self._calls)}", topic=topic, payload=raw, source=source)
        self._push(pb.HostMessage(event=event))
        return True

    def imported(self) -> list[str]:
        """The module names the plugin's runtime reported, in load order."""
        return [name for name, _ in self.imports]

    def ping(self, ping_id: int) -> None:
        """A health ping, as the supervisor sends them; returns once it is answered."""
        self._push(pb.HostMessage(ping=pb.Ping(id=ping_id)))
        self.wait_until(lambda: ping_id in self.pongs)

    def shutdown(self, grace_ms: int = 2000) -> None:
        """Asks the plugin to stop, as the supervisor does before killing it."""
        self._push(pb.HostMessage(shutdown=pb.Shutdown(grace_ms=grace_ms, reason="test over")))

    def wait_until(self, condition: Callable[[], object], timeout: float = ANSWER_SECONDS) -> None:
        """Waits for an event handler's effect (an emitted event, a log line...)."""
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                raise TimeoutError(f"not within {timeout}s")
            time.sleep(0.01)

    def close(self) -> None:
        """Stops the broker (the plugin's connection ends with it)."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._broker.join(ANSWER_SECONDS)
        self._dir.cleanup()

    def stop(self) -> None:
        self.shutdown()
        self.close()

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Running(Served):
    """`plugin` running in this process (on its own thread) against the test broker."""

    def __init__(self, script: _Script, plugin: Plugin) -> None:
        super().__init__(script)
        self._plugin_error: BaseException | None = None
        self._plugin = threading.Thread(target=self._run_plugin, args=(plugin,), daemon=True)
        self._plugin.start()
        try:
            self.wait_session()
        except TimeoutError:
            raise RuntimeError(
                f"the plugin did not open its session: {self._plugin_error}"
            ) from None

    def _run_plugin(self, plugin: Plugin) -> None:
        sock = self.connect()
        sock.setblocking(False)
        try:
            asyncio.run(plugin._serve(sock))
        except BaseException as err:
            self._plugin_error = err

    def stop(self) -> None:
        self.shutdown()
        self._plugin.join(ANSWER_SECONDS)
        self.close()

    def __enter__(self) -> Running:
        return self


__all__ = ["HostCall", "Running", "Served", "TestBroker"]
