"""The public test harness, as a plugin author uses it: the example hello plugin's
handlers in-process against TestBroker, allowed and refused."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

from plexichat_plugin import Plugin, PluginContext, PluginError
from plexichat_plugin.testing import TestBroker

HELLO = Path(__file__).resolve().parent.parent / "examples" / "hello" / "main.py"


def load_hello() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hello_example", HELLO)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hello_answers_counts_and_greets_with_the_grant() -> None:
    hello = load_hello()
    broker = TestBroker("hello-py").grant("database_read", ["messages"])
    broker.rows("SELECT COUNT(*) AS n FROM messages", [{"n": 42}])
    with broker.start(hello.plugin) as running:
        assert running.invoke("greet", "Ada") == b"Hello, Ada!"
        assert running.invoke("count") == b"42"
        assert running.publish("chat.message", "{}")
        running.wait_until(lambda: running.emitted)
        topic, payload = running.emitted[0]
        assert topic == "plugin.hello-py.greeted"
        assert json.loads(payload)["text"] == "Hello from hello!"
        running.wait_until(lambda: running.logs)
        assert running.logs[0][0] == "LOG_LEVEL_INFO"
        assert running.subscriptions == ["chat.message"]
        # Not subscribed: the broker would not deliver it.
        assert not running.publish("chat.other", "{}")


def test_the_hello_manifest_declares_what_the_plugin_answers() -> None:
    import tomllib

    manifest = tomllib.loads((HELLO.parent / "plugin.toml").read_text())
    assert (manifest["runtime"], manifest["entry"]) == ("python3", "main.py")
    declared = {c["name"] for c in manifest["commands"]}
    assert declared == set(load_hello().plugin._commands) == {"greet", "count"}
    assert manifest["events"]["subscribe"] == ["chat.message"]
    assert all(p["justification"] for p in manifest["permissions"])


def test_without_the_grant_the_count_is_refused() -> None:
    hello = load_hello()
    with TestBroker("hello-py").start(hello.plugin) as running:
        with pytest.raises(PluginError, match="Database read permission required"):
            running.invoke("count")


def test_the_broker_rules_apply_to_files_http_and_host_actions() -> None:
    plugin = Plugin()

    @plugin.command("read")
    def read(ctx: PluginContext, args: bytes) -> bytes:
        return ctx.get_service("files").read(args.decode())

    @plugin.command("fetch")
    def fetch(ctx: PluginContext, args: bytes) -> bytes:
        return ctx.get_service("http").get(args.decode()).body

    @plugin.command("ban")
    def ban(ctx: PluginContext, args: bytes) -> bytes:
        return ctx.get_service("host").act("user_management", "ban_user", args)

    broker = (
        TestBroker("probe")
        .grant("file_read", ["/srv/shared"])
        .grant("network_outbound", ["api.example.com"])
        .grant("user_management", ["ban_user"])
        .file("/srv/shared/a.txt", "shared")
        .file("/srv/secret/b.txt", "secret")
        .file("/data/own.txt", "own")
        .http("https://api.example.com/x", 200, "sunny")
        .host_result("user_management", "ban_user", "banned")
    )
    with broker.start(plugin) as running:
        assert running.invoke("read", "/data/own.txt") == b"own"
        assert running.invoke("read", "/srv/shared/a.txt") == b"shared"
        with pytest.raises(
            PluginError, match=re.escape("file_read does not cover `/srv/secret/b.txt`")
        ):
            running.invoke("read", "/srv/secret/b.txt")
        with pytest.raises(PluginError, match="must be absolute and normalised"):
            running.invoke("read", "/srv/shared/../secret/b.txt")
        assert running.invoke("fetch", "https://api.example.com/x") == b"sunny"
        with pytest.raises(
            PluginError, match=re.escape("network_outbound does not cover `evil.example:443`")
        ):
            running.invoke("fetch", "https://evil.example/x")
        assert running.invoke("ban", "mallory") == b"banned"
        assert running.host_calls[0].payload == b"mallory"
