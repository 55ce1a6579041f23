"""Fixtures for the client tests: a real supervisor started by the Rust harness.

`cargo test -p plexichat-e2e --test python_client` starts the daemon (own cgroup
name and uid range), writes the plugin packages and runs pytest with these set.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from plexichat_supervisor import Client

T = TypeVar("T")


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: these tests run against a real supervisor that "
            "`cargo test -p plexichat-e2e --test python_client` starts"
        )
    return value


@pytest.fixture
def client() -> Iterator[Client]:
    with Client(_env("PLEXICHAT_SOCKET"), timeout=20) as c:
        yield c


@pytest.fixture
def packages() -> Path:
    return Path(_env("PLEXICHAT_TEST_PACKAGES"))


def _as_uid(
    uid: int, socket: str, on_behalf_of: str | None, fn: Callable[[Client], Any], out: Any
) -> None:
    # Runs in a fresh interpreter started by root. The client is made (and grpc's
    # modules imported) as root, since the interpreter's files are root's; the
    # channel connects at the first call, after the switch, so SO_PEERCRED says `uid`.
    try:
        with Client(socket, timeout=20, on_behalf_of=on_behalf_of) as c:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            out.put(("ok", fn(c)))
    except Exception as err:
        out.put(("err", err))


def _runner(uid: int, on_behalf_of: str | None = None) -> Callable[[Callable[[Client], T]], T]:
    socket = _env("PLEXICHAT_SOCKET")

    def run(fn: Callable[[Client], T]) -> T:
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        proc = ctx.Process(target=_as_uid, args=(uid, socket, on_behalf_of, fn, out))
        proc.start()
        kind, value = out.get(timeout=60)
        proc.join(timeout=10)
        if kind == "err":
            raise value
        result: T = value
        return result

    return run


@pytest.fixture
def second_admin() -> Callable[[Callable[[Client], T]], T]:
    """Runs `fn(client)` connected as the second admin uid (a second approver)."""
    return _runner(int(_env("PLEXICHAT_TEST_SECOND_ADMIN")))


@pytest.fixture
def server_for() -> Callable[[str | None], Callable[[Callable[[Client], T]], T]]:
    """`server_for(name)(fn)`: `fn(client)` as the server-role uid acting for `name`."""
    uid = int(_env("PLEXICHAT_TEST_SERVER_UID"))
    return lambda on_behalf_of: _runner(uid, on_behalf_of)
