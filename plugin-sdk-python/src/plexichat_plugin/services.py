"""The brokered services a plugin reaches through `context.get_service(name)`:
database, files, http, events, host and commands, each call checked by the broker.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._proto import broker_pb2 as pb

if TYPE_CHECKING:
    from .context import PluginContext

SqlParam = None | bool | int | float | str | bytes
Row = dict[str, SqlParam]

# The broker moves at most this much per ReadFile/WriteFile call.
FILE_CHUNK_BYTES = 512 * 1024


def _sql_value(v: SqlParam) -> pb.SqlValue:
    if v is None:
        return pb.SqlValue(null=True)
    if isinstance(v, bool):
        return pb.SqlValue(integer=int(v))
    if isinstance(v, int):
        return pb.SqlValue(integer=v)
    if isinstance(v, float):
        return pb.SqlValue(real=v)
    if isinstance(v, str):
        return pb.SqlValue(text=v)
    if isinstance(v, bytes):
        return pb.SqlValue(blob=v)
    raise TypeError(f"SQL parameters are None, bool, int, float, str or bytes, not {type(v)}")


def _python_value(v: pb.SqlValue) -> SqlParam:
    kind = v.WhichOneof("kind")
    return None if kind in (None, "null") else getattr(v, kind)


class Database:
    """One SQL statement at a time against the application database.

    Reads need `database_read` on every table touched; INSERT/UPDATE/DELETE need
    `database_write` on the table. The broker refuses anything else (ATTACH, PRAGMA,
    schema changes) with PermissionDenied or InvalidArgument naming the problem.
    """

    def __init__(self, ctx: PluginContext) -> None:
        self._ctx = ctx

    def _run(self, sql: str, params: Sequence[SqlParam]) -> pb.QueryResponse:
        request = pb.QueryRequest(sql=sql, params=[_sql_value(p) for p in params])
        return self._ctx._rpc("Query", lambda s: s.Query(request))

    def query(self, sql: str, params: Sequence[SqlParam] = ()) -> list[Row]:
        """The rows the statement returns, each a dict of column name to value."""
        answer = self._run(sql, params)
        columns = list(answer.columns)
        return [
            dict(zip(columns, (_python_value(v) for v in row.values), strict=False))
            for row in answer.rows
        ]

    def execute(self, sql: str, params: Sequence[SqlParam] = ()) -> int:
        """Runs an INSERT, UPDATE or DELETE; the number of rows it changed."""
        return int(self._run(sql, params).rows_affected)


@dataclass(frozen=True)
class DirEntry:
    name: str
    kind: str
    """"file", "dir" or "other"."""
    size: int


@dataclass(frozen=True)
class FileStat:
    kind: str
    size: int
    modified_ms: int


class Files:
    """Files: `/data/...` is the plugin's own (always allowed); any other absolute
    path needs a `file_read` or `file_write` grant covering it. Symlinks are never
    followed; paths must be normalised.
    """

    def __init__(self, ctx: PluginContext) -> None:
        self._ctx = ctx

    def read(self, path: str) -> bytes:
        """The whole file, fetched in 512 KiB chunks."""
        data = bytearray()
        while True:
            chunk = self.read_at(path, len(data))
            data += chunk.data
            if chunk.eof or not chunk.data:
                return bytes(data)

    def read_at(self, path: str, offset: int, max_bytes: int = 0) -> pb.ReadFileResponse:
        """One chunk from `offset` (at most 512 KiB; `eof` says whether it ends the file)."""
        request = pb.ReadFileRequest(path=path, offset=offset, max_bytes=max_bytes)
        return self._ctx._rpc("ReadFile", lambda s: s.ReadFile(request))

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read(path).decode(encoding)

    def write(self, path: str, data: bytes | str) -> int:
        """Replaces the file (atomically when it fits one 512 KiB call); its new size."""
        raw = data.encode() if isinstance(data, str) else data
        first, rest = raw[:FILE_CHUNK_BYTES], raw[FILE_CHUNK_BYTES:]
        size = self._write(path, first, append=False)
        for at in range(0, len(rest), FILE_CHUNK_BYTES):
            size = self._write(path, rest[at : at + FILE_CHUNK_BYTES], append=True)
        return size

    def append(self, path: str, data: bytes | str) -> int:
        raw = data.encode() if isinstance(data, str) else data
        size = 0
        for at in range(0, max(len(raw), 1), FILE_CHUNK_BYTES):
            size = self._write(path, raw[at : at + FILE_CHUNK_BYTES], append=True)
        return size

    def _write(self, path: str, data: bytes, append: bool) -> int:
        request = pb.WriteFileRequest(path=path, data=data, append=append)
        return int(self._ctx._rpc("WriteFile", lambda s: s.WriteFile(request)).size)

    def list(self, path: str) -> list[DirEntry]:
        answer = self._ctx._rpc("ListDir", lambda s: s.ListDir(pb.ListDirRequest(path=path)))
        return [DirEntry(e.name, e.kind, e.size) for e in answer.entries]

    def stat(self, path: str) -> FileStat:
        answer = self._ctx._rpc("StatPath", lambda s: s.StatPath(pb.StatRequest(path=path)))
        return FileStat(answer.kind, answer.size, answer.modified_ms)

    def remove(self, path: str) -> None:
        """Removes a file or an empty directory."""
        self._ctx._rpc("RemovePath", lambda s: s.RemovePath(pb.RemoveRequest(path=path)))

    def mkdir(self, path: str) -> None:
        self._ctx._rpc("MakeDir", lambda s: s.MakeDir(pb.MakeDirRequest(path=path)))


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    url: str
    """The URL that answered, after redirects."""

    def json(self) -> Any:
        return json.loads(self.body)


class Http:
    """HTTP(S) requests the supervisor makes for the plugin (`network_outbound`).

    Host and port must be covered by the grant, every redirect is checked the same
    way, and private addresses need a `private:` scope entry.
    """

    def __init__(self, ctx: PluginContext) -> None:
        self._ctx = ctx

    def get(self, url: str, headers: Iterable[tuple[str, str]] = ()) -> HttpResponse:
        return self.request("GET", url, headers)

    def request(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | str = b"",
    ) -> HttpResponse:
        request = pb.HttpRequest(
            method=method,
            url=url,
            headers=[pb.HttpHeader(name=n, value=v) for n, v in headers],
            body=body.encode() if isinstance(body, str) else body,
        )
        answer = self._ctx._rpc("Http", lambda s: s.Http(request))
        return HttpResponse(
            answer.status, [(h.name, h.value) for h in answer.headers], answer.body, answer.url
        )


class Events:
    """Events under the plugin's own namespace (`plugin.<name>.`), and subscriptions."""

    def __init__(self, ctx: PluginContext) -> None:
        self._ctx = ctx

    def emit(self, name: str, payload: bytes | str = b"") -> str:
        return self._ctx.emit(name, payload)

    def emit_json(self, name: str, value: Any) -> str:
        return self._ctx.emit_json(name, value)

    def subscribe(self, topics: Iterable[str]) -> list[str]:
        """Adds subscriptions (exact topics or `prefix.*`); all the broker delivers."""
        request = pb.SubscribeRequest(topics=list(topics))
        return list(self._ctx._rpc("Subscribe", lambda s: s.Subscribe(request)).topics)


class Host:
    """Actions the PlexiChat server performs for the plugin: `user_management`,
    `system_config`, `plugin_management`, within the grant's target and action.
    """

    def __init__(self, ctx: PluginContext) -> None:
        self._ctx = ctx

    def act(self, permission: str, target: str, payload: bytes | str = b"") -> bytes:
        """An action on `target` with no sub-action (a scope entry `target` covers it)."""
        return self.call(permission, target, "", payload)

    def call(self, permission: str, target: str, action: str, payload: bytes | str = b"") -> bytes:
        """Action `action` on `target` (a scope entry `target:action` covers it)."""
        request = pb.HostActionRequest(
            permission=permission,
            target=target,
            action=action,
            payload=payload.encode() if isinstance(payload, str) else payload,
        )
        return bytes(self._ctx._rpc("HostAction", lambda s: s.HostAction(request)).result)


@dataclass(frozen=True)
class CommandOutput:
    exited: bool
    """True when it exited (exit_code is set), False when a signal killed it."""
    exit_code: int
    signal: int
    stdout: bytes
    stderr: bytes
    truncated: bool
    """Output beyond the supervisor's cap was dropped."""


class Commands:
    """Host commands (`execute_commands`): an argv matching an approved entry runs
    confined like the plugin and is killed at the supervisor's timeout.
    """

    def __init__(self, ctx: PluginContext) -> None:
        self._ctx = ctx

    def run(self, argv: Sequence[str]) -> CommandOutput:
        request = pb.ExecuteRequest(argv=list(argv))
        a = self._ctx._rpc("Execute", lambda s: s.Execute(request))
        return CommandOutput(a.exited, a.exit_code, a.signal, a.stdout, a.stderr, a.truncated)
