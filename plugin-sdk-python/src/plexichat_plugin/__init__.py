"""The PlexiChat plugin SDK for Python: handlers over the supervisor's broker.

`Plugin` registers command and event handlers; each gets a `PluginContext` whose
`has_permission` and `get_service(...)` are the Security Guide's API, every call
checked and audited by the broker.
"""

from .context import Grant, PluginContext
from .errors import (
    Aborted,
    DeadlineExceeded,
    ErrorCode,
    InvalidArgument,
    NoBroker,
    NotFound,
    PermissionDenied,
    PluginError,
    ResourceExhausted,
    Unavailable,
)
from .plugin import SDK_VERSION, Event, Plugin
from .services import CommandOutput, DirEntry, FileStat, HttpResponse

__all__ = [
    "SDK_VERSION",
    "Aborted",
    "CommandOutput",
    "DeadlineExceeded",
    "DirEntry",
    "ErrorCode",
    "Event",
    "FileStat",
    "Grant",
    "HttpResponse",
    "InvalidArgument",
    "NoBroker",
    "NotFound",
    "PermissionDenied",
    "Plugin",
    "PluginContext",
    "PluginError",
    "ResourceExhausted",
    "Unavailable",
]
