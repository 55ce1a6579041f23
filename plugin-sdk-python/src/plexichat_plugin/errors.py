"""The SDK's errors: one class per broker status a plugin is expected to handle.

Plugins catch these rather than gRPC types, so the transport can change under them.
"""

from __future__ import annotations

import enum

from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError


class ErrorCode(enum.Enum):
    """Why a broker call failed, as the broker's gRPC status says."""

    PERMISSION_DENIED = "permission_denied"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    UNAVAILABLE = "unavailable"
    NOT_FOUND = "not_found"
    INVALID_ARGUMENT = "invalid_argument"
    FAILED_PRECONDITION = "failed_precondition"
    ABORTED = "aborted"
    ALREADY_EXISTS = "already_exists"
    OTHER = "other"


class PluginError(Exception):
    """A broker call the supervisor refused or could not complete.

    `code` says why; the message is the broker's, naming the permission, scope or
    limit involved.
    """

    code = ErrorCode.OTHER

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PermissionDenied(PluginError, PermissionError):
    """No live grant covers the call (also a Python PermissionError, as the Guide uses)."""

    code = ErrorCode.PERMISSION_DENIED


class ResourceExhausted(PluginError):
    """A rate limit, quota or size cap was hit; retry later or send less."""

    code = ErrorCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(PluginError, TimeoutError):
    """The call (or the host command, HTTP request or server action) took too long."""

    code = ErrorCode.DEADLINE_EXCEEDED


class Unavailable(PluginError):
    """The broker or the service behind it (e.g. the PlexiChat server) is not there."""

    code = ErrorCode.UNAVAILABLE


class NotFound(PluginError):
    code = ErrorCode.NOT_FOUND


class InvalidArgument(PluginError, ValueError):
    code = ErrorCode.INVALID_ARGUMENT


class FailedPrecondition(PluginError):
    code = ErrorCode.FAILED_PRECONDITION


class Aborted(PluginError):
    """The PlexiChat server refused a host action; the message is its reason."""

    code = ErrorCode.ABORTED


class AlreadyExists(PluginError):
    code = ErrorCode.ALREADY_EXISTS


class NoBroker(PluginError):
    """The process was not started by the supervisor: no broker socket on the fd."""

    code = ErrorCode.UNAVAILABLE


_BY_STATUS: dict[Status, type[PluginError]] = {
    Status.PERMISSION_DENIED: PermissionDenied,
    Status.RESOURCE_EXHAUSTED: ResourceExhausted,
    Status.DEADLINE_EXCEEDED: DeadlineExceeded,
    Status.UNAVAILABLE: Unavailable,
    Status.NOT_FOUND: NotFound,
    Status.INVALID_ARGUMENT: InvalidArgument,
    Status.FAILED_PRECONDITION: FailedPrecondition,
    Status.ABORTED: Aborted,
    Status.ALREADY_EXISTS: AlreadyExists,
}


def from_transport(method: str, err: BaseException) -> PluginError:
    """The SDK error for a failed broker call (a gRPC status or a lost connection)."""
    if isinstance(err, GRPCError):
        cls = _BY_STATUS.get(err.status, PluginError)
        return cls(err.message or f"{method}: {err.status.name.lower()}")
    if isinstance(err, StreamTerminatedError | ConnectionError | OSError):
        return Unavailable(f"{method}: the broker connection is gone: {err}")
    return PluginError(f"{method}: {err}")
