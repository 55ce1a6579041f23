"""The client package against a real supervisor: install by upload, dual approval,
enable, invoke with a deadline, events both ways, host actions, notifications, audit.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from plexichat_supervisor import (
    Client,
    HostActionRefused,
    HostActions,
    PackageError,
    Stream,
    SupervisorError,
    label,
    pb,
)

SecondAdmin = Callable[[Callable[[Client], Any]], Any]
PENDING = pb.PERMISSION_STATUS_PENDING
GRANTED = pb.PERMISSION_STATUS_GRANTED


def collect(stream: Stream[Any], into: queue.Queue[Any]) -> threading.Thread:
    """Drains a server stream into a queue on a thread, until cancelled."""

    def run() -> None:
        for message in stream:
            into.put(message)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_for(
    q: queue.Queue[Any], match: Callable[[Any], bool], what: str, timeout: float = 15
) -> Any:
    end = time.monotonic() + timeout
    seen = []
    while time.monotonic() < end:
        try:
            item = q.get(timeout=max(0.01, end - time.monotonic()))
        except queue.Empty:
            break
        if match(item):
            return item
        seen.append(item)
    pytest.fail(f"no {what} within {timeout}s; saw {seen}")


def statuses(detail: pb.PluginDetail) -> dict[str, int]:
    return {p.permission: p.status for p in detail.permissions}


def approve_all(c: Client, name: str) -> list[pb.PermissionRecord]:
    return c.approve(name, comment="second approver")


def whoami(c: Client) -> pb.WhoAmIResponse:
    return c.whoami()


def approve_weather(c: Client) -> list[pb.PermissionRecord]:
    return c.approve("weather", comment="through the admin panel")


def test_whoami_names_the_admin_role(client: Client) -> None:
    me = client.whoami()
    assert me.role == pb.ROLE_ADMIN, me
    assert label(pb.Role, me.role) == "admin"
    assert label(pb.NotificationKind, pb.NOTIFICATION_KIND_APPROVAL_REQUIRED) == (
        "approval_required"
    )
    assert label(pb.Role, 999) == "unknown(999)"


def test_the_server_role_changes_state_only_on_behalf_of_an_admin(
    client: Client, packages: Path, server_for: Callable[[str | None], SecondAdmin]
) -> None:
    me = server_for("alice")(whoami)
    assert (me.role, me.on_behalf_of) == (pb.ROLE_SERVER, "alice")
    client.install(packages / "weather")
    with pytest.raises(SupervisorError) as refused:
        server_for(None)(approve_weather)
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert "on behalf of" in refused.value.details
    decided = server_for("alice")(approve_weather)
    assert [(r.permission, r.status) for r in decided] == [("network_outbound", GRANTED)]
    assert any("alice" in a for a in decided[0].approvers), decided
    client.remove("weather")


def test_hello_installs_by_upload_runs_answers_and_greets(client: Client, packages: Path) -> None:
    summary = client.install(packages / "hello")
    assert summary.name == "hello"
    assert statuses(client.show_plugin("hello")) == {"database_read": PENDING}
    # Enabling before the decision is refused and names what is missing.
    with pytest.raises(SupervisorError) as refused:
        client.enable("hello")
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "database_read" in refused.value.details

    decided = client.approve("hello", comment="reads messages only")
    assert [(r.permission, r.status) for r in decided] == [("database_read", GRANTED)]
    client.enable("hello")
    client.wait_running("hello")

    assert client.invoke("hello", "greet", "Ada", deadline=5) == b"Hello, Ada!"

    greeted: queue.Queue[pb.PluginEvent] = queue.Queue()
    with client.watch_events(["plugin.hello.*"]) as events:
        collect(events, greeted)
        # The watch is registered by its first message or a moment after opening.
        time.sleep(0.5)
        published = client.publish("chat.message", json.dumps({"text": "hi"}))
        assert "hello" in published.delivered_to
        event = wait_for(greeted, lambda e: e.topic == "plugin.hello.greeted", "greeted event")
    assert event.plugin == "hello"
    assert json.loads(event.payload)["reply_to"] == published.id

    # Declared commands are listed; an undeclared one never reaches the plugin.
    assert "greet" in [c.name for c in client.show_plugin("hello").commands]
    with pytest.raises(SupervisorError) as undeclared:
        client.invoke("hello", "shout")
    assert undeclared.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "greet" in undeclared.value.details

    client.disable("hello")
    assert client.show_plugin("hello").summary.pid == 0


def test_declared_settings_render_set_reach_the_plugin_and_keep_secrets(
    client: Client, packages: Path
) -> None:
    # The hello package of these tests declares greeting, max_greetings and api_token.
    if "hello" not in [p.name for p in client.list_plugins()]:
        client.install(packages / "hello")
        client.approve("hello", comment="reads messages only")
    client.enable("hello")
    client.wait_running("hello")
    form = {s.key: s for s in client.settings("hello").settings}
    assert list(form) == ["greeting", "max_greetings", "api_token"]
    assert form["greeting"].default_value == "Hello" and not form["greeting"].is_set
    assert client.invoke("hello", "config", "greeting") == b"Hello"

    client.set_setting("hello", "greeting", "Hi")
    assert client.invoke("hello", "config", "greeting") == b"Hi"
    with pytest.raises(SupervisorError) as bad:
        client.set_setting("hello", "max_greetings", "many")
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_greetings" in bad.value.details and "integer" in bad.value.details
    assert not client.settings("hello").settings[1].is_set

    secret = "s3cr3t-token-value"
    client.set_setting("hello", "api_token", secret)
    shown = client.settings("hello").settings[2]
    assert shown.is_set and not shown.HasField("value")
    assert client.invoke("hello", "config", "api_token") == secret.encode()
    assert not [r for r in client.audit(plugin="hello") if secret in str(r)]

    client.unset_setting("hello", "greeting")
    assert client.invoke("hello", "config", "greeting") == b"Hello"
    client.disable("hello")


def test_a_package_the_daemon_would_refuse_is_refused_before_sending(
    client: Client, tmp_path: Path, packages: Path
) -> None:
    pkg = tmp_path / "linked"
    pkg.mkdir()
    (pkg / "plugin.toml").write_text('name = "linked"\nversion = "1.0.0"\nentry = "x"\n')
    os.symlink("/etc/passwd", pkg / "x")
    with pytest.raises(PackageError, match="`x` is not a regular file"):
        client.install(pkg)

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "plugin.toml").write_text('name = "Bad Name"\nversion = "1"\nentry = "x"\n')
    (bad / "x").write_bytes(b"#!/bin/sh\n")
    with pytest.raises(SupervisorError) as err:
        client.install(bad)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in err.value.details
    assert "Bad Name" not in [p.name for p in client.list_plugins()]


def test_a_pxp_archive_uploads_with_its_signature_and_reviews(
    client: Client, packages: Path
) -> None:
    archive = packages / "echo-archive.pxp"
    # A signature beside the archive is sent with it, and one that is not an SSH
    # signature is refused by name (this daemon does not require one).
    sig = Path(f"{archive}.sig")
    sig.write_text("not a signature")
    with pytest.raises(SupervisorError) as refused:
        client.install(archive)
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "not an SSH signature" in refused.value.details
    sig.unlink()
    summary = client.install(archive)
    assert summary.name == "echo-archive"
    assert not summary.HasField("signer")
    review = client.review("echo-archive")
    assert [f.path for f in review.package.files] == ["echo", "plugin.toml"]
    assert review.package.entry.format.startswith("ELF 64-bit")
    client.remove("echo-archive")


def test_invoke_deadline_is_enforced_by_the_supervisor(client: Client, packages: Path) -> None:
    client.install(packages / "echo")
    client.enable("echo")
    client.wait_running("echo")
    assert client.invoke("echo", "echo", b"ping", deadline=5) == b"ping"
    started = time.monotonic()
    with pytest.raises(SupervisorError) as err:
        client.invoke("echo", "freeze", deadline=1)
    took = time.monotonic() - started
    assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED, err.value
    assert took < 1 + 2, f"answered after {took:.2f}s"
    with pytest.raises(SupervisorError) as missing:
        client.invoke("nosuchplugin", "greet")
    assert missing.value.code == grpc.StatusCode.UNAVAILABLE
    assert "nosuchplugin" in missing.value.details
    client.disable("echo", force=True)


def test_dual_approval_then_host_actions_served_from_python(
    client: Client, packages: Path, second_admin: SecondAdmin
) -> None:
    notes: queue.Queue[pb.Notification] = queue.Queue()
    with client.notifications() as stream:
        collect(stream, notes)
        time.sleep(0.5)
        client.install(packages / "moderator")
        wait_for(
            notes,
            lambda n: n.plugin == "moderator" and n.kind == pb.NOTIFICATION_KIND_APPROVAL_REQUIRED,
            "approval_required notification",
        )

    # user_management is critical: one admin's approval leaves it pending.
    client.approve("moderator", comment="first approver")
    detail = client.show_plugin("moderator")
    assert statuses(detail) == {"sensitive_events": GRANTED, "user_management": PENDING}
    pending = next(p for p in detail.permissions if p.permission == "user_management")
    assert pending.required_approvals == 2 and len(pending.approvers) == 1
    # The same admin approving again does not count twice.
    with pytest.raises(SupervisorError):
        client.approve("moderator", ["user_management"], comment="again")
    second = second_admin(functools.partial(approve_all, name="moderator"))
    assert [(r.permission, r.status) for r in second] == [("user_management", GRANTED)]

    calls: queue.Queue[pb.HostActionCall] = queue.Queue()
    actions = HostActions(client)

    @actions.on("user_management", "ban_user")
    def ban(call: pb.HostActionCall) -> str:
        calls.put(call)
        user = call.payload.decode()
        if user == "admin":
            raise HostActionRefused("admins cannot be banned")
        return f"banned {user}"

    server = actions.start()
    try:
        client.enable("moderator")
        client.wait_running("moderator")
        time.sleep(0.5)
        client.publish("chat.private.mallory", "buy cheap pills")
        call = wait_for(calls, lambda c: True, "host action call")
        assert (call.plugin, call.permission, call.target, call.payload) == (
            "moderator",
            "user_management",
            "ban_user",
            b"mallory",
        )
        client.publish("chat.private.admin", "buy cheap pills")
        wait_for(calls, lambda c: c.payload == b"admin", "the refused call")
        wait_until_audited(client, "moderator", "broker.host_action", 2)
    finally:
        actions.stop()
        server.join(timeout=10)
    assert not server.is_alive()
    records = [r for r in client.audit(plugin="moderator") if r.action == "broker.host_action"]
    # The ban went through; the refusal of the staff account came back as a failure.
    assert sorted(r.outcome for r in records) == [pb.OUTCOME_OK, pb.OUTCOME_FAILED], records
    client.disable("moderator")


def wait_until_audited(client: Client, plugin: str, action: str, count: int) -> None:
    end = time.monotonic() + 15
    while time.monotonic() < end:
        if sum(1 for r in client.audit(plugin=plugin) if r.action == action) >= count:
            return
        time.sleep(0.2)
    pytest.fail(f"fewer than {count} {action} records for {plugin}")


def test_denied_plugin_cannot_be_enabled(client: Client, packages: Path) -> None:
    client.install(packages / "weather")
    decided = client.deny("weather", comment="no outbound network")
    assert [(r.permission, r.status) for r in decided] == [
        ("network_outbound", pb.PERMISSION_STATUS_DENIED)
    ]
    with pytest.raises(SupervisorError) as err:
        client.enable("weather")
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
    client.remove("weather")
    assert "weather" not in [p.name for p in client.list_plugins()]


def test_audit_pages_cover_every_record_once(client: Client) -> None:
    whole = client.stub.QueryAudit(pb.AuditQuery(limit=1000), timeout=20).records
    assert len(whole) > 12, "the earlier tests left fewer records than three pages"
    pages = list(client.audit_pages(page_size=5))
    assert len(pages) >= 3 and all(len(p) <= 5 for p in pages)
    paged = [r.id for r in client.audit(page_size=5)]
    # Records written while paging (e.g. by a plugin) may appear in `paged` only.
    assert len(paged) == len(set(paged)), "a record came twice"
    assert paged == sorted(paged, reverse=True)
    assert {r.id for r in whole} <= set(paged)
