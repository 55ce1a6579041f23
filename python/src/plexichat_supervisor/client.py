"""The admin API client: one channel to the supervisor's Unix socket, and a method
per operation the PlexiChat server needs, returning the generated protobuf messages.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import grpc

from . import upload
from ._proto import admin_pb2 as pb
from ._proto import admin_pb2_grpc as pb_grpc
from .errors import SupervisorError
from .streams import Stream

DEFAULT_SOCKET = "/run/plexichat/supervisor.sock"
"""Where the packaged service listens (`admin_socket` in supervisor.toml)."""

SOCKET_ENV = "PLEXICHAT_SOCKET"
"""Environment variable that overrides DEFAULT_SOCKET, as for the `plexichat` CLI."""

ON_BEHALF_OF_HEADER = "x-plexichat-on-behalf-of"

# Extra time the gRPC deadline of an invocation allows beyond the command's own
# deadline, so the supervisor's DEADLINE_EXCEEDED (which names the plugin) arrives
# before the client gives up on its own.
INVOKE_SLACK_SECONDS = 2.0

R = TypeVar("R")


def resolve_socket(socket_path: str | os.PathLike[str] | None = None) -> Path:
    """The socket to use: the argument, else $PLEXICHAT_SOCKET, else the default."""
    if socket_path is not None:
        return Path(socket_path)
    return Path(os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET)


def _millis(when: datetime | None) -> int:
    return 0 if when is None else int(when.timestamp() * 1000)


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


class Client:
    """A connection to the supervisor's admin socket.

    The supervisor identifies the caller by the socket's peer credentials (its uid)
    and maps it to a role (admin, server, viewer); nothing is sent to log in. A
    server-role caller may act for an end-user admin with `on_behalf_of`, which the
    audit trail records beside the caller.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        timeout: float = 30.0,
        on_behalf_of: str | None = None,
    ) -> None:
        self.socket_path = resolve_socket(socket_path).absolute()
        self.timeout = timeout
        self._metadata: tuple[tuple[str, str], ...] = (
            ((ON_BEHALF_OF_HEADER, on_behalf_of),) if on_behalf_of else ()
        )
        # grpc-core would send the percent-encoded socket path as :authority; say
        # `localhost`, as grpc-go does for Unix sockets, so the client also works with
        # HTTP/2 servers that reject such an authority.
        self._channel = grpc.insecure_channel(
            f"unix://{self.socket_path}", options=[("grpc.default_authority", "localhost")]
        )
        self.stub: Any = pb_grpc.AdminStub(self._channel)  # type: ignore[no-untyped-call]
        """The generated stub, for RPCs this layer does not wrap."""

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, name: str, request: Any, reply: type[R], timeout: float | None = None) -> R:
        method: Callable[..., Any] = getattr(self.stub, name)
        try:
            return cast(
                R,
                method(
                    request,
                    timeout=self.timeout if timeout is None else timeout,
                    metadata=self._metadata,
                ),
            )
        except grpc.RpcError as err:
            raise SupervisorError.from_rpc(name, err) from None

    def _stream(self, name: str, request: Any) -> Stream[Any]:
        method: Callable[..., Any] = getattr(self.stub, name)
        return Stream(name, method(request, metadata=self._metadata))

    # Who is calling.

    def whoami(self) -> pb.WhoAmIResponse:
        """The uid and role the supervisor sees for this connection."""
        return self._call("WhoAmI", pb.WhoAmIRequest(), pb.WhoAmIResponse)

    # Plugins.

    def list_plugins(self) -> list[pb.PluginSummary]:
        return list(
            self._call("ListPlugins", pb.ListPluginsRequest(), pb.ListPluginsResponse).plugins
        )

    def show_plugin(self, name: str) -> pb.PluginDetail:
        """Manifest, permissions with their status, resources, topics, last exit."""
        return self._call("ShowPlugin", pb.PluginRef(name=name), pb.PluginDetail)

    def install(
        self,
        package: str | os.PathLike[str],
        *,
        signature: str | os.PathLike[str] | None = None,
    ) -> pb.PluginSummary:
        """Uploads the package (a directory or a `.pxp` archive) and installs it (admin role).

        The daemon never opens a path the caller names: the files are read here,
        with this process's rights, and streamed, with the publisher's detached
        signature (`signature`, else `PACKAGE.sig` when it exists). The plugin's
        permissions start pending; nothing runs until they are decided and the
        plugin is enabled.
        """
        header = pb.UploadHeader(
            intent=pb.UPLOAD_INTENT_INSTALL, origin=str(Path(package).absolute())
        )
        return self._upload(Path(package), header, signature).summary

    def update(
        self,
        name: str,
        package: str | os.PathLike[str],
        *,
        signature: str | os.PathLike[str] | None = None,
    ) -> pb.UploadPluginResponse:
        """Uploads a newer version of an installed plugin (admin role), as `install`."""
        header = pb.UploadHeader(
            intent=pb.UPLOAD_INTENT_UPDATE, name=name, origin=str(Path(package).absolute())
        )
        return self._upload(Path(package), header, signature)

    def review(self, name: str) -> pb.PluginReview:
        """The reviewer's dossier: requests and what approving them allows, signer, files."""
        return self._call("ReviewPlugin", pb.PluginRef(name=name), pb.PluginReview)

    def _upload(
        self,
        package: Path,
        header: pb.UploadHeader,
        signature: str | os.PathLike[str] | None,
    ) -> pb.UploadPluginResponse:
        header.signature = upload.signature_for(
            package, Path(signature) if signature is not None else None
        )
        if package.is_file():
            stream = upload.archive_chunks(package, header)
        else:
            stream = upload.chunks(package, header)
        try:
            response: pb.UploadPluginResponse = self.stub.UploadPlugin(
                stream, timeout=self.timeout, metadata=self._metadata
            )
        except grpc.RpcError as err:
            raise SupervisorError.from_rpc("UploadPlugin", err) from None
        return response

    def approve(
        self,
        name: str,
        permissions: Iterable[str] = (),
        *,
        comment: str,
        expires_in: timedelta | None = None,
        expires_at: datetime | None = None,
        scope: Iterable[str] = (),
    ) -> list[pb.PermissionRecord]:
        """Approves the named pending permissions (all when empty); admin role.

        High and critical permissions need approvals from different admins: until
        enough have approved, the record stays pending and lists its approvers.
        """
        request = pb.DecisionRequest(
            name=name,
            permissions=list(permissions),
            comment=comment,
            expires_at_ms=_millis(expires_at),
            expires_in_secs=int(expires_in.total_seconds()) if expires_in else 0,
            scope=list(scope),
        )
        return list(self._call("Approve", request, pb.DecisionResponse).decided)

    def deny(
        self, name: str, permissions: Iterable[str] = (), *, comment: str
    ) -> list[pb.PermissionRecord]:
        """Denies the named pending permissions (all when empty); admin role."""
        request = pb.DecisionRequest(name=name, permissions=list(permissions), comment=comment)
        return list(self._call("Deny", request, pb.DecisionResponse).decided)

    def enable(self, name: str, *, verify_security: bool = False) -> pb.PluginSummary:
        """Starts the plugin (and keeps it started across restarts); admin role."""
        request = pb.EnablePluginRequest(name=name, verify_security=verify_security)
        return self._call("EnablePlugin", request, pb.EnablePluginResponse).summary

    def disable(self, name: str, *, force: bool = False) -> pb.PluginSummary:
        """Stops the plugin; `force` also stops a core plugin. Admin role."""
        return self._call(
            "DisablePlugin", pb.DisablePluginRequest(name=name, force=force), pb.PluginSummary
        )

    def remove(self, name: str) -> None:
        """Uninstalls the plugin and deletes its data. Admin role."""
        self._call("RemovePlugin", pb.PluginRef(name=name), pb.RemovePluginResponse)

    def wait_running(self, name: str, timeout: float = 30.0) -> pb.PluginSummary:
        """Polls until the plugin's process runs; TimeoutError naming its last state."""
        end = time.monotonic() + timeout
        while True:
            summary = self.show_plugin(name).summary
            if summary.pid > 0 and summary.runtime == pb.RUNTIME_PHASE_RUNNING:
                return summary
            if time.monotonic() > end:
                raise TimeoutError(
                    f"plugin {name} not running after {timeout}s: "
                    f"state {pb.PluginState.Name(summary.state)}, "
                    f"runtime {pb.RuntimePhase.Name(summary.runtime)}, {summary.state_reason}"
                )
            time.sleep(0.1)

    # Declared settings (manifest [[settings]]): what an admin panel renders as a form.

    def settings(self, name: str) -> pb.PluginSettings:
        """The plugin's declared settings in manifest order: key, type, choices,
        description, default, whether a value is set and (never for a secret) it."""
        request = pb.GetPluginSettingsRequest(name=name)
        return self._call("GetPluginSettings", request, pb.PluginSettings)

    def set_setting(self, name: str, key: str, value: str) -> pb.PluginSetting:
        """Sets one declared setting (checked against its type; INVALID_ARGUMENT and
        nothing changed when it does not fit). The plugin sees it at its next read."""
        request = pb.SetPluginSettingRequest(name=name, key=key, value=value)
        return self._call("SetPluginSetting", request, pb.PluginSetting)

    def unset_setting(self, name: str, key: str) -> pb.PluginSetting:
        """Removes the operator's value: the plugin sees the declared default again."""
        request = pb.UnsetPluginSettingRequest(name=name, key=key)
        return self._call("UnsetPluginSetting", request, pb.PluginSetting)

    # The data plane: events, commands, notifications.

    def publish(self, topic: str, payload: bytes | str = b"") -> pb.PublishEventResponse:
        """Publishes a chat event to the plugins subscribed to `topic` (server role)."""
        request = pb.PublishEventRequest(topic=topic, payload=_as_bytes(payload))
        return self._call("PublishEvent", request, pb.PublishEventResponse)

    def watch_events(self, topics: Iterable[str] = ()) -> Stream[pb.PluginEvent]:
        """The events plugins emit, from now on: exact topics or `prefix.*`; all if empty."""
        return self._stream("WatchEvents", pb.WatchEventsRequest(topics=list(topics)))

    def invoke(
        self,
        plugin: str,
        command: str,
        args: bytes | str = b"",
        *,
        deadline: float | None = None,
    ) -> bytes:
        """Runs one of the plugin's commands and returns its output.

        `deadline` (seconds) bounds the command in the supervisor, which answers
        DEADLINE_EXCEEDED when the plugin takes longer; without it the supervisor's
        `[runtime] command_timeout` applies.
        """
        request = pb.InvokeCommandRequest(
            plugin=plugin,
            command=command,
            args=_as_bytes(args),
            timeout_ms=int(deadline * 1000) if deadline is not None else 0,
        )
        grpc_timeout = (deadline if deadline is not None else self.timeout) + INVOKE_SLACK_SECONDS
        response = self._call("InvokeCommand", request, pb.InvokeCommandResponse, grpc_timeout)
        return response.output

    def notifications(self) -> Stream[pb.Notification]:
        """Approval requests, quarantines, crashes and the like, as they happen."""
        return self._stream("WatchNotifications", pb.WatchNotificationsRequest())

    # The audit trail.

    def audit_pages(
        self,
        *,
        plugin: str = "",
        since: datetime | None = None,
        page_size: int = 100,
    ) -> Iterator[list[pb.AuditRecord]]:
        """Pages of matching audit records, newest page first (oldest first within one)."""
        before_id = 0
        while True:
            query = pb.AuditQuery(
                plugin=plugin, since_ms=_millis(since), page_size=page_size, before_id=before_id
            )
            response = self._call("QueryAudit", query, pb.AuditResponse)
            if response.records:
                yield list(response.records)
            if response.next_before_id == 0:
                return
            before_id = response.next_before_id

    def audit(
        self, *, plugin: str = "", since: datetime | None = None, page_size: int = 100
    ) -> Iterator[pb.AuditRecord]:
        """Every matching audit record, newest first, fetched a page at a time."""
        for page in self.audit_pages(plugin=plugin, since=since, page_size=page_size):
            yield from reversed(page)
