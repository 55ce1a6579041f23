"""Short lower-case names for the API's enum values (`approval_required`, `running`),
as the CLI prints them; the messages carry the enums themselves.
"""

from __future__ import annotations

from typing import Any


def label(enum: Any, value: int) -> str:
    """`label(pb.NotificationKind, n.kind)` -> "approval_required"; unknown -> "unknown(N)".

    `enum` is a generated enum wrapper (`pb.PluginState`, `pb.RuntimePhase`...): its
    value 0 is named `<PREFIX>_UNSPECIFIED`, and that prefix is dropped.
    """
    try:
        name = str(enum.Name(value))
    except ValueError:
        return f"unknown({value})"
    prefix = str(enum.Name(0)).removesuffix("UNSPECIFIED")
    return name.removeprefix(prefix).lower()
