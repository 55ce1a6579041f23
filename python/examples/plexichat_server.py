#!/usr/bin/env python3
"""Plays the PlexiChat server against a running supervisor, end to end.

Reads chat lines from stdin and publishes them as events (`#room user: text` as
`chat.message`, `@to user: text` as the private `chat.private.<user>`), serves the
`user_management` host actions plugins ask for (ban_user, warn_user), and prints the
events plugins emit and the supervisor's notifications. At end of input it lingers
for `--linger` seconds so answers still arrive, then exits.

    PLEXICHAT_SOCKET=/run/plexichat/supervisor.sock python3 plexichat_server.py
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from plexichat_supervisor import (
    Client,
    HostActionRefused,
    HostActions,
    Stream,
    SupervisorError,
    label,
    pb,
)

T = TypeVar("T")

# Accounts the example server protects from moderation.
STAFF = {"admin", "moderator"}


def say(line: str) -> None:
    print(line, flush=True)


def print_stream(
    open_stream: Callable[[], Stream[T]], show: Callable[[T], str], stop: threading.Event
) -> threading.Thread:
    """Prints each message; reopens the stream when the supervisor restarts."""

    def run() -> None:
        while not stop.is_set():
            try:
                with open_stream() as stream:
                    for message in stream:
                        say(show(message))
            except SupervisorError as err:
                if stop.is_set():
                    return  # the channel closing at exit
                say(f"stream lost ({err.code.name}); reopening")
            stop.wait(1.0)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def show_event(e: pb.PluginEvent) -> str:
    return f"event {e.topic} from {e.plugin}: {e.payload.decode(errors='replace')}"


def show_notification(n: pb.Notification) -> str:
    return f"notification {label(pb.NotificationKind, n.kind)} {n.plugin}: {n.message}"


def moderation(client: Client) -> HostActions:
    """The server's user_management actions; a real server would call its user store."""
    actions = HostActions(client)

    @actions.on("user_management", "ban_user")
    def ban(call: pb.HostActionCall) -> str:
        user = call.payload.decode()
        say(f"host action from {call.plugin}: user_management ban_user {user}")
        if user in STAFF:
            raise HostActionRefused(f"{user} is staff and cannot be banned")
        return f"{user} banned"

    @actions.on("user_management", "warn_user")
    def warn(call: pb.HostActionCall) -> str:
        user = call.payload.decode()
        say(f"host action from {call.plugin}: user_management warn_user {user}")
        return f"{user} warned"

    return actions


def topic_and_payload(line: str) -> tuple[str, bytes] | None:
    """`#room user: text` or `@to user: text` as an event; None for anything else."""
    head, sep, text = line.partition(":")
    parts = head.split()
    if not sep or len(parts) != 2 or parts[0][:1] not in "#@":
        return None
    where, user = parts
    payload = json.dumps({"room": where, "user": user, "text": text.strip()}).encode()
    if where.startswith("@"):
        # Private messages: the payload is the text alone, the sender in the topic.
        return f"chat.private.{user}", text.strip().encode()
    return "chat.message", payload


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", help="the admin socket (default: $PLEXICHAT_SOCKET)")
    parser.add_argument("--linger", type=float, default=3.0, help="seconds to wait after input")
    args = parser.parse_args()

    with Client(args.socket) as client:
        me = client.whoami()
        say(f"connected as {me.identity} ({label(pb.Role, me.role)})")
        stop = threading.Event()
        print_stream(client.watch_events, show_event, stop)
        print_stream(client.notifications, show_notification, stop)
        actions = moderation(client)
        server = actions.start()
        for line in sys.stdin:
            parsed = topic_and_payload(line.strip())
            if parsed is None:
                say(f"skipped: {line.strip()!r} (use `#room user: text` or `@to user: text`)")
                continue
            topic, payload = parsed
            try:
                sent = client.publish(topic, payload)
            except SupervisorError as err:
                say(f"could not publish {topic}: {err}")
                continue
            say(f"published {topic} to {', '.join(sent.delivered_to) or 'nobody'}")
        time.sleep(args.linger)
        stop.set()
        actions.stop()
        server.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
