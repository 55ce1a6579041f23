"""Runs broker coroutines on the SDK's event loop for handlers on worker threads,
so a plugin's code is plain synchronous Python, as in the Security Guide.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from .errors import PluginError, from_transport

T = TypeVar("T")

# Longest a handler waits for one broker call; the broker's own limits (exec, HTTP,
# host-action and query timeouts) are all shorter, so this only fires on a hang.
CALL_WAIT_SECONDS = 120.0


class Bridge:
    """The loop that owns the broker connection, reachable from other threads."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._loop_thread = threading.get_ident()

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread

    def call(self, method: str, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Runs `make()` on the loop and waits for it, mapping failures to PluginError."""
        if self.on_loop_thread():
            raise RuntimeError(
                f"{method}: broker calls block; make them from a handler, not the event loop"
            )
        future = asyncio.run_coroutine_threadsafe(_mapped(method, make()), self.loop)
        try:
            return future.result(timeout=CALL_WAIT_SECONDS)
        except TimeoutError:
            future.cancel()
            raise from_transport(method, TimeoutError("no answer from the broker")) from None

    def fire(self, method: str, make: Callable[[], Awaitable[Any]]) -> None:
        """Starts `make()` on the loop without waiting (log records from any thread)."""

        async def run() -> None:
            try:
                await make()
            except Exception as err:
                # A lost log line must not take the plugin down, nor vanish unsaid:
                # stderr reaches the plugin's log even without the broker.
                print(f"plexichat_plugin: {method} failed: {err}", file=sys.stderr, flush=True)

        asyncio.run_coroutine_threadsafe(run(), self.loop)


async def _mapped(method: str, coro: Coroutine[Any, Any, T]) -> T:
    try:
        return await coro
    except PluginError:
        raise
    except Exception as err:
        raise from_transport(method, err) from None
