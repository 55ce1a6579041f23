"""The Python client row of `make bench-broker`: a checked, audited no-op broker call
from the Python SDK (`context.has_permission("file_read")`, as the Rust echo plugin's
`bench-calls` times it) beside, in the same run, a bare grpclib echo of the same
message over a `socket.socketpair()`:

- `sdk_call_*`: handler threads calling `has_permission` through the SDK to the
  broker (the real one under the supervisor, the test broker standalone);
- `bare_echo_*`: an asyncio grpclib client calling a grpclib echo server (a forked
  process, as the broker is another process; a thread if fork is refused) — the floor
  of any grpclib call;
- `bridge_echo_*`: the same echo called from handler threads through the SDK's
  bridge, so the thread hop is told apart from the broker's own work.

Latencies in µs (p50 and p99 as the Rust bench computes them), rates in calls/s.

    plugin command:  bench-calls "CALLS IN_FLIGHT"     (the `bench-py` plugin)
    standalone:      python3 bench/main.py [CALLS [IN_FLIGHT]]   (against TestBroker)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from grpclib.client import UnaryUnaryMethod
from grpclib.const import Cardinality, Handler
from grpclib.server import Server, Stream

from plexichat_plugin import Plugin, PluginContext
from plexichat_plugin._proto import broker_pb2 as pb
from plexichat_plugin.bridge import Bridge
from plexichat_plugin.connection import SocketChannel

ECHO_PATH = "/plexichat.bench.v1.Echo/Echo"
# The message the broker call carries, echoed as is: the same encoding work.
MESSAGE = pb.HasPermissionRequest(permission="file_read")
DEFAULT_CALLS = 2000
DEFAULT_IN_FLIGHT = 1
MAX_IN_FLIGHT = 8  # handler threads count against the plugin's pids limit
WARMUP_FRACTION = 10


@dataclass(frozen=True)
class Figure:
    p50_us: float
    p99_us: float
    per_sec: float


def figure(latencies_us: list[float], seconds: float) -> Figure:
    v = sorted(latencies_us)

    def at(q: float) -> float:
        return v[round((len(v) - 1) * q)]

    return Figure(round(at(0.5), 1), round(at(0.99), 1), round(len(v) / seconds, 1))


def in_threads(calls: int, in_flight: int, call: Callable[[], object]) -> Figure:
    """`in_flight` threads making `calls` calls between them, each one timed."""
    per_thread = calls // in_flight
    results: list[list[float]] = [[] for _ in range(in_flight)]
    errors: list[BaseException] = []

    def loop(out: list[float]) -> None:
        try:
            for _ in range(per_thread):
                t = time.perf_counter()
                call()
                out.append((time.perf_counter() - t) * 1e6)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=loop, args=(r,)) for r in results]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"a timed call failed: {errors[0]}")
    return figure([x for r in results for x in r], time.perf_counter() - started)


# ---------------------------------------------------------------------------------------
# The bare grpclib echo


class Echo:
    """A unary echo with grpclib's low-level handler API: no generated code."""

    def __mapping__(self) -> dict[str, Handler]:
        return {
            ECHO_PATH: Handler(
                self.echo, Cardinality.UNARY_UNARY, pb.HasPermissionRequest, pb.HasPermissionRequest
            )
        }

    async def echo(self, stream: Stream[Any, Any]) -> None:
        await stream.send_message(await stream.recv_message())


async def serve_echo(sock: socket.socket) -> None:
    """Serves the echo on one connected socket until the peer goes away."""
    loop = asyncio.get_running_loop()
    server = Server([Echo()])
    transport, _ = await loop.connect_accepted_socket(
        server._protocol_factory,
        sock,  # grpclib serves listeners; one connection is enough here
    )
    while not transport.is_closing():
        await asyncio.sleep(0.05)


class EchoServer:
    """The echo server on the far end of a socketpair: a forked process if fork is
    allowed (the broker is another process too), else a thread."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        self.client_sock = ours
        self.pid = 0
        self.kind = "process"
        try:
            self.pid = os.fork()
        except OSError:
            self.kind = "thread"
        if self.kind == "process" and self.pid == 0:
            ours.close()
            try:
                asyncio.run(serve_echo(theirs))
            finally:
                os._exit(0)
        if self.kind == "thread":
            threading.Thread(target=asyncio.run, args=(serve_echo(theirs),), daemon=True).start()
        else:
            theirs.close()

    def stop(self) -> None:
        self.client_sock.close()
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)


def echo_method(channel: SocketChannel) -> UnaryUnaryMethod[Any, Any]:
    return UnaryUnaryMethod(channel, ECHO_PATH, pb.HasPermissionRequest, pb.HasPermissionRequest)


async def bare_echo_async(sock: socket.socket, calls: int, in_flight: int) -> Figure:
    channel = SocketChannel(sock)
    echo = echo_method(channel)
    for _ in range(max(1, calls // WARMUP_FRACTION)):
        await echo(MESSAGE)

    async def loop(out: list[float]) -> None:
        for _ in range(calls // in_flight):
            t = time.perf_counter()
            await echo(MESSAGE)
            out.append((time.perf_counter() - t) * 1e6)

    results: list[list[float]] = [[] for _ in range(in_flight)]
    started = time.perf_counter()
    await asyncio.gather(*(loop(r) for r in results))
    seconds = time.perf_counter() - started
    channel.close()
    return figure([x for r in results for x in r], seconds)


def bare_echo(calls: int, in_flight: int) -> tuple[Figure, str]:
    server = EchoServer()
    sock = server.client_sock
    sock.setblocking(False)
    try:
        return asyncio.run(bare_echo_async(sock, calls, in_flight)), server.kind
    finally:
        server.stop()


class LoopThread:
    """An event loop on its own thread, as the SDK runs the broker connection."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def bridge_echo(calls: int, in_flight: int) -> Figure:
    server = EchoServer()
    sock = server.client_sock
    sock.setblocking(False)
    loop = LoopThread()

    async def setup() -> tuple[Bridge, UnaryUnaryMethod[Any, Any], SocketChannel]:
        # Built on the loop's thread: grpclib binds to the running loop, and the
        # bridge remembers which thread is the loop's.
        channel = SocketChannel(sock)
        return Bridge(asyncio.get_running_loop()), echo_method(channel), channel

    try:
        bridge, echo, channel = loop.run(setup())

        def call() -> object:
            return bridge.call("Echo", lambda: echo(MESSAGE))

        in_threads(max(1, calls // WARMUP_FRACTION), 1, call)
        result = in_threads(calls, in_flight, call)
        loop.loop.call_soon_threadsafe(channel.close)
        return result
    finally:
        loop.stop()
        server.stop()


# ---------------------------------------------------------------------------------------
# The SDK call, and the run


def sdk_calls(ctx: PluginContext, calls: int, in_flight: int) -> Figure:
    def call() -> object:
        return ctx.has_permission("file_read")

    in_threads(max(1, calls // WARMUP_FRACTION), 1, call)
    return in_threads(calls, in_flight, call)


def parse(args: str) -> tuple[int, int]:
    parts = args.split()
    try:
        calls = int(parts[0]) if parts else DEFAULT_CALLS
        in_flight = int(parts[1]) if len(parts) > 1 else DEFAULT_IN_FLIGHT
    except ValueError:
        raise ValueError(f"bench-calls takes `CALLS [IN_FLIGHT]`, got {args!r}") from None
    if calls < 1 or not 1 <= in_flight <= MAX_IN_FLIGHT or calls < in_flight:
        raise ValueError(
            f"CALLS >= 1 and IN_FLIGHT 1-{MAX_IN_FLIGHT} (at most CALLS), got {args!r}"
        )
    return calls, in_flight


def rows(ctx: PluginContext, calls: int, in_flight: int) -> dict[str, object]:
    """All three rows in one run, each its own figures."""
    sdk = sdk_calls(ctx, calls, in_flight)
    bare, server_kind = bare_echo(calls, in_flight)
    bridged = bridge_echo(calls, in_flight)
    out: dict[str, object] = {"calls": calls, "in_flight": in_flight}
    for name, f in (("sdk_call", sdk), ("bare_echo", bare), ("bridge_echo", bridged)):
        out |= {
            f"{name}_us_p50": f.p50_us,
            f"{name}_us_p99": f.p99_us,
            f"{name}_per_sec": f.per_sec,
        }
    out |= {
        "sdk_call": 'has_permission("file_read")',
        "echo_server": server_kind,
        "sdk_vs_bare_p50": round(sdk.p50_us / bare.p50_us, 2),
        "python": sys.version.split()[0],
    }
    return out


plugin = Plugin()


@plugin.command("bench-calls")
def bench_calls(ctx: PluginContext, args: bytes) -> str:
    calls, in_flight = parse(args.decode())
    return json.dumps(rows(ctx, calls, in_flight))


def standalone(argv: list[str]) -> int:
    """Without the supervisor: the SDK calls go to the test broker (in this process,
    so its grpclib server shares the GIL: a pessimistic SDK row)."""
    from plexichat_plugin.testing import TestBroker

    calls, in_flight = parse(" ".join(argv))
    with TestBroker("bench-py").start(plugin) as running:
        print(running.invoke("bench-calls", f"{calls} {in_flight}").decode())
    return 0


if __name__ == "__main__":
    if "PLEXICHAT_BROKER_FD" in os.environ:
        plugin.run()
    else:
        sys.exit(standalone(sys.argv[1:]))
