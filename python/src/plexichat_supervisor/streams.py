"""Server streams (events, notifications) as iterators the caller can cancel.

Cancelling ends the iteration quietly; any other stream failure is a SupervisorError.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

import grpc

from .errors import SupervisorError

T = TypeVar("T")


class Stream(Generic[T]):
    """An open server stream: iterate for messages, `cancel()` from any thread to stop."""

    def __init__(self, method: str, call: Any) -> None:
        self._method = method
        self._call = call
        self._cancelled = threading.Event()

    def __iter__(self) -> Iterator[T]:
        try:
            yield from self._call
        except grpc.RpcError as err:
            if self._cancelled.is_set() and err.code() == grpc.StatusCode.CANCELLED:
                return
            raise SupervisorError.from_rpc(self._method, err) from None

    def cancel(self) -> None:
        self._cancelled.set()
        self._call.cancel()

    def __enter__(self) -> Stream[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()
