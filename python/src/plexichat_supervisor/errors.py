"""Errors the client raises: one type carrying the gRPC status the supervisor sent.

The supervisor names what is wrong in the status details; callers branch on `code`.
"""

from __future__ import annotations

import grpc


class SupervisorError(Exception):
    """A call the supervisor refused or could not complete.

    `code` is the gRPC status (e.g. ``grpc.StatusCode.PERMISSION_DENIED``) and
    `details` the supervisor's explanation, which names the plugin, permission or
    field at fault.
    """

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{method}: {code.name}: {details}")
        self.method = method
        self.code = code
        self.details = details

    def __reduce__(self) -> tuple[type[SupervisorError], tuple[str, grpc.StatusCode, str]]:
        # Crosses process boundaries (multiprocessing) with its fields intact.
        return (type(self), (self.method, self.code, self.details))

    @classmethod
    def from_rpc(cls, method: str, err: grpc.RpcError) -> SupervisorError:
        code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = err.details() if isinstance(err, grpc.Call) else str(err)
        return cls(method, code, details or "")


class PackageError(ValueError):
    """A package directory the client will not send (the daemon would refuse it)."""


class HostActionRefused(Exception):
    """Raised by a host-action handler to refuse the call with a message.

    The plugin receives ABORTED carrying the message; the audit trail records it.
    """
