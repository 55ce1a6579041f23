"""The plugin's main loop: handshake, subscriptions, the session stream, and the
dispatch of commands and events to handlers on a bounded pool of worker threads.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import imports
from ._proto import broker_pb2 as pb
from ._proto.broker_grpc import BrokerStub
from .bridge import Bridge
from .connection import SocketChannel, adopt, broker_fd
from .context import PluginContext
from .errors import PluginError, from_transport

SDK_VERSION = "0.1.0"
PROTOCOL_VERSIONS = (1,)
PLUGIN_NAME_ENV = "PLEXICHAT_PLUGIN_NAME"
PLUGIN_VERSION_ENV = "PLEXICHAT_PLUGIN_VERSION"

# Room a reply's envelope takes beside its output within the broker's message limit.
REPLY_OVERHEAD_BYTES = 1024
# How long the last import report may hold up a clean shutdown.
FINAL_REPORT_SECONDS = 1.0
# Handler calls queued per worker before the SDK stops reading the session (the
# broker then holds or drops further events by its own per-plugin limits).
QUEUED_PER_WORKER = 16


@dataclass(frozen=True)
class Event:
    id: str
    topic: str
    payload: bytes
    source: str
    """"server" for the PlexiChat server's events, else "plugin:<name>"."""
    timestamp_ms: int

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.payload)


CommandHandler = Callable[[PluginContext, bytes], bytes | str | None]
EventHandler = Callable[[PluginContext, Event], None]
ShutdownHandler = Callable[[PluginContext], None]


def topic_matches(pattern: str, topic: str) -> bool:
    """Exact topics, or `prefix.*` for everything below `prefix.`."""
    if pattern.endswith(".*"):
        return topic.startswith(pattern[:-1])
    return pattern == topic


def _diagnostic(message: str) -> None:
    # stderr goes to the plugin's log even when the broker cannot be reached.
    print(f"plexichat_plugin: {message}", file=sys.stderr, flush=True)


class Plugin:
    """A plugin: register handlers with the decorators, then call `run()`.

        plugin = Plugin()

        @plugin.command("greet")
        def greet(ctx, args):
            return f"Hello, {args.decode() or 'world'}!"

        plugin.run()

    Handlers are plain functions run on `workers` threads; broker calls inside them
    block until answered. Pings are answered on the event loop, never behind a
    handler, so a busy plugin is not mistaken for a hung one.
    """

    def __init__(self, *, workers: int = 4) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._workers = workers
        self._commands: dict[str, CommandHandler] = {}
        self._events: list[tuple[str, EventHandler]] = []
        self._shutdown: ShutdownHandler | None = None

    def command(self, name: str) -> Callable[[CommandHandler], CommandHandler]:
        """Decorator: `handler(ctx, args: bytes)` answers command `name`; what it
        returns (bytes, str or None) is the output, what it raises the error."""
        if not name or name in self._commands:
            raise ValueError(f"command {name!r} is empty or registered twice")

        def register(handler: CommandHandler) -> CommandHandler:
            self._commands[name] = handler
            return handler

        return register

    def on_event(self, pattern: str) -> Callable[[EventHandler], EventHandler]:
        """Decorator: `handler(ctx, event)` runs for each event matching `pattern`
        (an exact topic or `prefix.*`), subscribed before the session opens."""
        if not pattern or ("*" in pattern and not pattern.endswith(".*")):
            raise ValueError(f"topic pattern {pattern!r}: an exact topic or `prefix.*`")

        def register(handler: EventHandler) -> EventHandler:
            self._events.append((pattern, handler))
            return handler

        return register

    def on_shutdown(self, handler: ShutdownHandler) -> ShutdownHandler:
        """Decorator: runs once when the supervisor asks the plugin to stop."""
        self._shutdown = handler
        return handler

    def run(self) -> None:
        """Connects over the inherited broker fd and serves until the supervisor asks
        for shutdown or goes away. Raises PluginError if the handshake fails."""
        sock = adopt(broker_fd())
        asyncio.run(self._serve(sock))

    async def _serve(self, sock: Any) -> None:
        # Built inside the loop: grpclib binds its channel to the running loop.
        await _Session(self, sock).serve()


class _Session:
    def __init__(self, plugin: Plugin, sock: Any) -> None:
        self.plugin = plugin
        self.channel = SocketChannel(sock)
        self.stub = BrokerStub(self.channel)
        self.pool = ThreadPoolExecutor(plugin._workers, thread_name_prefix="handler")
        self.slots = asyncio.Semaphore(plugin._workers * QUEUED_PER_WORKER)
        self.tasks: set[asyncio.Task[None]] = set()
        self.reporter: asyncio.Task[None] | None = None

    async def serve(self) -> None:
        try:
            ctx = await self.handshake()
            self.start_import_reports()
            patterns = list(dict.fromkeys(p for p, _ in self.plugin._events))
            if patterns:
                await self.stub.Subscribe(pb.SubscribeRequest(topics=patterns))
            shutdown = await self.session(ctx)
            if shutdown is not None:
                await self.drain(ctx, shutdown)
                await self.final_import_report()
        except PluginError:
            raise
        except Exception as err:
            raise from_transport("session", err) from None
        finally:
            if self.reporter is not None:
                self.reporter.cancel()
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.channel.close()

    def start_import_reports(self) -> None:
        """Under the boot script, reports imports from now on (those queued before the
        handshake first); without it (tests) there is no monitor and nothing to do."""
        monitor = imports.active()
        if monitor is not None:
            self.reporter = asyncio.create_task(
                monitor.report_forever(self.stub.ReportImports, _diagnostic)
            )

    async def final_import_report(self) -> None:
        monitor = imports.active()
        if monitor is None or self.reporter is None:
            return
        self.reporter.cancel()
        try:
            await asyncio.wait_for(
                monitor.flush(self.stub.ReportImports, _diagnostic), FINAL_REPORT_SECONDS
            )
        except Exception as err:
            _diagnostic(f"last import report not sent: {err}")

    async def handshake(self) -> PluginContext:
        request = pb.HandshakeRequest(
            protocol_versions=list(PROTOCOL_VERSIONS),
            plugin_name=os.environ.get(PLUGIN_NAME_ENV, ""),
            plugin_version=os.environ.get(PLUGIN_VERSION_ENV, ""),
            sdk_version=f"python-{SDK_VERSION}",
        )
        answer = await self.stub.Handshake(request)
        if answer.protocol_version not in PROTOCOL_VERSIONS:
            raise PluginError(
                f"the broker chose protocol {answer.protocol_version}; "
                f"this SDK speaks {list(PROTOCOL_VERSIONS)}"
            )
        return PluginContext(self.stub, Bridge(asyncio.get_running_loop()), answer)

    async def session(self, ctx: PluginContext) -> pb.Shutdown | None:
        async with self.stub.Session.open() as stream:
            await stream.send_message(pb.SessionRequest(), end=True)
            while True:
                message = await stream.recv_message()
                if message is None:
                    return None
                kind = message.WhichOneof("kind")
                if kind == "shutdown":
                    # Leaving the stream normally would wait for its trailers.
                    await stream.cancel()
                    return message.shutdown
                if kind == "ping":
                    self.spawn(self.pong(message.ping.id))
                elif kind == "invoke":
                    await self.slots.acquire()
                    self.spawn(self.invoke(ctx, message.invoke))
                elif kind == "event":
                    await self.dispatch_event(ctx, message.event)
                # Anything else is from a newer protocol revision: nothing to do.

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def pong(self, ping_id: int) -> None:
        try:
            await self.stub.Pong(pb.PongRequest(id=ping_id))
        except Exception as err:
            _diagnostic(f"could not answer ping {ping_id}: {err}")

    async def invoke(self, ctx: PluginContext, call: pb.CommandInvocation) -> None:
        try:
            reply = await self.run_command(ctx, call)
        finally:
            self.slots.release()
        try:
            await self.stub.Reply(reply)
        except Exception as err:
            _diagnostic(f"could not reply to command `{call.command}`: {err}")

    async def run_command(self, ctx: PluginContext, call: pb.CommandInvocation) -> pb.CommandReply:
        handler = self.plugin._commands.get(call.command)
        if handler is None:
            known = ", ".join(sorted(self.plugin._commands)) or "none"
            return pb.CommandReply(
                invocation_id=call.invocation_id,
                ok=False,
                error=f"no command `{call.command}` (this plugin has: {known})",
            )
        loop = asyncio.get_running_loop()
        try:
            out = await loop.run_in_executor(self.pool, handler, ctx, bytes(call.args))
        except Exception as err:
            return pb.CommandReply(invocation_id=call.invocation_id, ok=False, error=str(err))
        output = out.encode() if isinstance(out, str) else (out or b"")
        limit = ctx.max_message_bytes - REPLY_OVERHEAD_BYTES
        if ctx.max_message_bytes and len(output) > limit:
            return pb.CommandReply(
                invocation_id=call.invocation_id,
                ok=False,
                error=f"output of {len(output)} bytes exceeds the broker's {limit}",
            )
        return pb.CommandReply(invocation_id=call.invocation_id, ok=True, output=output)

    async def dispatch_event(self, ctx: PluginContext, raw: pb.Event) -> None:
        event = Event(raw.id, raw.topic, bytes(raw.payload), raw.source, raw.timestamp_ms)
        for pattern, handler in self.plugin._events:
            if topic_matches(pattern, event.topic):
                await self.slots.acquire()
                self.spawn(self.run_event(ctx, handler, event))

    async def run_event(self, ctx: PluginContext, handler: EventHandler, event: Event) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.pool, handler, ctx, event)
        except Exception as err:
            ctx.logger.error("event handler for %s failed: %s", event.topic, err)
        finally:
            self.slots.release()

    async def drain(self, ctx: PluginContext, shutdown: pb.Shutdown) -> None:
        """Lets running handlers finish within half the grace, then the hook."""
        grace = shutdown.grace_ms / 1000
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=grace / 2)
            if pending:
                _diagnostic(f"{len(pending)} handler(s) still running at shutdown")
        hook = self.plugin._shutdown
        if hook is not None:
            loop = asyncio.get_running_loop()
            try:
                await asyncio.wait_for(
                    loop.run_in_executor(self.pool, hook, ctx), timeout=grace / 2
                )
            except Exception as err:
                ctx.logger.error("shutdown hook failed: %s", err)
