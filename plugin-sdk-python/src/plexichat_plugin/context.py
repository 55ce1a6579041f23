"""What a handler gets: the plugin's identity and grants, permission checks, config,
logging, events and `get_service(...)` for the brokered services.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from ._proto import broker_grpc
from ._proto import broker_pb2 as pb
from .bridge import Bridge
from .services import Commands, Database, Events, Files, Host, Http

T = TypeVar("T")

ServiceName = Literal["database", "files", "http", "events", "host", "commands"]

_LEVELS = {
    logging.DEBUG: pb.LOG_LEVEL_DEBUG,
    logging.INFO: pb.LOG_LEVEL_INFO,
    logging.WARNING: pb.LOG_LEVEL_WARN,
    logging.ERROR: pb.LOG_LEVEL_ERROR,
    logging.CRITICAL: pb.LOG_LEVEL_ERROR,
}


@dataclass(frozen=True)
class Grant:
    """A permission in force when the plugin started, with its approved scope."""

    permission: str
    scope: tuple[str, ...]
    expires_at_ms: int
    """Unix milliseconds; 0 means no expiry."""


class _BrokerLog(logging.Handler):
    """Sends log records to the plugin's own log through the broker (always allowed)."""

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(logging.DEBUG)
        self._ctx = ctx

    def emit(self, record: logging.LogRecord) -> None:
        request = pb.LogRequest(
            level=_LEVELS.get(record.levelno, pb.LOG_LEVEL_INFO),
            message=self.format(record),
            fields={"logger": record.name} if record.name != self._ctx.name else {},
        )
        self._ctx._bridge.fire("Log", lambda: self._ctx._stub.Log(request))


class PluginContext:
    """The plugin's side of the broker. Every method is a checked, audited broker
    call that blocks the calling handler until the broker answers.
    """

    def __init__(
        self, stub: broker_grpc.BrokerStub, bridge: Bridge, handshake: pb.HandshakeResponse
    ) -> None:
        self._stub = stub
        self._bridge = bridge
        self.name: str = handshake.plugin_name
        self.version: str = handshake.plugin_version
        self.protocol_version: int = handshake.protocol_version
        self.emit_prefix: str = handshake.emit_prefix
        self.max_message_bytes: int = handshake.max_message_bytes
        self.grants: tuple[Grant, ...] = tuple(
            Grant(g.permission, tuple(g.scope), g.expires_at_ms) for g in handshake.grants
        )
        self.logger = logging.getLogger(self.name or "plugin")
        """A standard logger whose records go to the plugin's log in the supervisor."""
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False
        if not any(isinstance(h, _BrokerLog) for h in self.logger.handlers):
            self.logger.addHandler(_BrokerLog(self))

    def _rpc(
        self, method: str, call: Callable[[broker_grpc.BrokerStub], Coroutine[Any, Any, T]]
    ) -> T:
        return self._bridge.call(method, lambda: call(self._stub))

    def has_permission(self, permission: str, scope: str = "") -> bool:
        """Whether a live grant covers `permission` (and `scope`, when given: a path,
        `host:port`, a table...). Asks the broker, so an expiry or revocation since
        the start counts."""
        request = pb.HasPermissionRequest(permission=permission, scope=scope)
        return bool(self._rpc("HasPermission", lambda s: s.HasPermission(request)).granted)

    @overload
    def get_service(self, name: Literal["database"]) -> Database: ...
    @overload
    def get_service(self, name: Literal["files"]) -> Files: ...
    @overload
    def get_service(self, name: Literal["http"]) -> Http: ...
    @overload
    def get_service(self, name: Literal["events"]) -> Events: ...
    @overload
    def get_service(self, name: Literal["host"]) -> Host: ...
    @overload
    def get_service(self, name: Literal["commands"]) -> Commands: ...
    def get_service(self, name: ServiceName) -> Any:
        """A brokered service by the Guide's name."""
        services: dict[str, Callable[[PluginContext], Any]] = {
            "database": Database,
            "files": Files,
            "http": Http,
            "events": Events,
            "host": Host,
            "commands": Commands,
        }
        try:
            return services[name](self)
        except KeyError:
            raise ValueError(
                f"no service {name!r}; there are {', '.join(sorted(services))}"
            ) from None

    def config_get(self, key: str) -> str | None:
        """The plugin's own config value (always allowed); None when unset."""
        answer = self._rpc("GetConfig", lambda s: s.GetConfig(pb.GetConfigRequest(key=key)))
        return answer.value if answer.found else None

    def config_set(self, key: str, value: str) -> None:
        request = pb.SetConfigRequest(key=key, value=value)
        self._rpc("SetConfig", lambda s: s.SetConfig(request))

    def emit(self, name: str, payload: bytes | str = b"") -> str:
        """Emits `plugin.<name>.<name>` (the handshake's prefix plus `name`); its id."""
        request = pb.EmitEventRequest(
            topic=self.emit_prefix + name,
            payload=payload.encode() if isinstance(payload, str) else payload,
        )
        return str(self._rpc("EmitEvent", lambda s: s.EmitEvent(request)).id)

    def emit_json(self, name: str, value: Any) -> str:
        return self.emit(name, json.dumps(value, separators=(",", ":")))
