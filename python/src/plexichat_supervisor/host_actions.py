"""The PlexiChat server's side of plugins' host actions: a handler per action, fed
by the supervisor's ServeHostActions stream, each call answered exactly once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from ._proto import admin_pb2 as pb
from .client import Client
from .errors import HostActionRefused, SupervisorError

log = logging.getLogger(__name__)

# Reconnection backoff of serve_forever: a restarting supervisor is back in seconds.
BACKOFF_INITIAL_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 5.0

Handler = Callable[[pb.HostActionCall], bytes | str | None]
"""Performs the action; returns the result for the plugin. Raise HostActionRefused
to refuse with a message; any other exception is reported to the plugin as a failure."""

_STOP = object()


class HostActions:
    """Registers handlers and serves the calls the supervisor has authorised.

    The supervisor checked each call against the plugin's live grant before it is
    streamed here: a handler performs exactly the target and action it is given.
    Handlers run on a bounded pool (`workers`), so one slow action does not hold up
    the others; the supervisor times out a call after `[runtime] command_timeout`.
    """

    def __init__(self, client: Client, *, workers: int = 4) -> None:
        self._client = client
        self._workers = workers
        self._handlers: dict[tuple[str, str, str], Handler] = {}
        self._results: queue.Queue[Any] = queue.Queue()
        self._call: Any = None
        self._stopping = threading.Event()

    def on(self, permission: str, target: str, action: str = "") -> Callable[[Handler], Handler]:
        """Decorator: `handler` serves calls for this permission, target and action.

        For `user_management` the target is the action name the grant covers
        (`ban_user`); for `system_config` a config key; for `plugin_management` a
        plugin name, with `action` such as `restart`.
        """

        def register(handler: Handler) -> Handler:
            self._handlers[(permission, target, action)] = handler
            return handler

        return register

    def _requests(self) -> Iterator[pb.HostActionResult]:
        while True:
            item = self._results.get()
            if item is _STOP:
                return
            yield item

    def _answer(self, call: pb.HostActionCall) -> pb.HostActionResult:
        handler = self._handlers.get((call.permission, call.target, call.action))
        if handler is None:
            return pb.HostActionResult(
                id=call.id,
                ok=False,
                error=f"the server has no handler for {call.permission} {call.target}"
                + (f":{call.action}" if call.action else ""),
            )
        try:
            out = handler(call)
        except HostActionRefused as refused:
            return pb.HostActionResult(id=call.id, ok=False, error=str(refused))
        except Exception as err:  # the plugin hears of it; the server keeps serving
            log.exception("host action %s for plugin %s failed", call.target, call.plugin)
            return pb.HostActionResult(id=call.id, ok=False, error=f"handler failed: {err}")
        result = out.encode() if isinstance(out, str) else (out or b"")
        return pb.HostActionResult(id=call.id, ok=True, result=result)

    def _answer_into_queue(self, call: pb.HostActionCall) -> None:
        self._results.put(self._answer(call))

    def serve(self) -> None:
        """Holds the stream open and serves calls until `stop()`; blocks.

        Raises SupervisorError if the supervisor ends the stream (e.g. a newer
        server connection replaced this one, or the caller lacks the server role).
        """
        stub = self._client.stub
        self._call = stub.ServeHostActions(self._requests(), metadata=self._client._metadata)
        with ThreadPoolExecutor(self._workers, thread_name_prefix="host-action") as pool:
            try:
                for call in self._call:
                    pool.submit(self._answer_into_queue, call)
            except grpc.RpcError as err:
                if not (self._stopping.is_set() and err.code() == grpc.StatusCode.CANCELLED):
                    raise SupervisorError.from_rpc("ServeHostActions", err) from None
            finally:
                self._results.put(_STOP)

    def serve_forever(self) -> None:
        """Serves until `stop()`, reconnecting when the supervisor goes away (a
        restart, an upgrade) with a backoff from 0.2 s to 5 s; blocks.

        Calls made while no server was connected were answered UNAVAILABLE to the
        plugin by the supervisor; nothing is replayed.
        """
        backoff = BACKOFF_INITIAL_SECONDS
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                self.serve()
                return
            except SupervisorError as err:
                if self._stopping.is_set():
                    return
                if time.monotonic() - started > BACKOFF_MAX_SECONDS:
                    backoff = BACKOFF_INITIAL_SECONDS
                log.warning("host actions stream ended (%s); reconnecting in %.1fs", err, backoff)
            self._results = queue.Queue()
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    def start(self, *, reconnect: bool = True) -> threading.Thread:
        """Serves on a daemon thread (`serve_forever`, or `serve` without
        `reconnect`); returns it."""
        target = self.serve_forever if reconnect else self.serve
        thread = threading.Thread(target=target, name="host-actions", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Ends serving for good (a stopped HostActions does not start again)."""
        self._stopping.set()
        if self._call is not None:
            self._call.cancel()
