"""Python client for the PlexiChat plugin supervisor's admin API.

`Client` wraps the gRPC stub on the supervisor's Unix socket; `HostActions` serves
plugins' host actions; `pb` is the generated protobuf module for every message.
"""

from ._proto import admin_pb2 as pb
from .client import DEFAULT_SOCKET, SOCKET_ENV, Client, resolve_socket
from .errors import HostActionRefused, PackageError, SupervisorError
from .host_actions import HostActions
from .labels import label
from .streams import Stream

__all__ = [
    "DEFAULT_SOCKET",
    "SOCKET_ENV",
    "Client",
    "HostActionRefused",
    "HostActions",
    "PackageError",
    "Stream",
    "SupervisorError",
    "label",
    "pb",
    "resolve_socket",
]
