"""The `hello` example plugin in Python: answers `greet` and `count`, and greets every
`chat.message` event with a `plugin.hello.greeted` event.
"""

from __future__ import annotations

from plexichat_plugin import Event, Plugin, PluginContext

plugin = Plugin()


@plugin.command("greet")
def greet(ctx: PluginContext, args: bytes) -> str:
    name = args.decode().strip() or "world"
    return f"Hello, {name}!"


@plugin.command("count")
def count(ctx: PluginContext, args: bytes) -> str:
    # The Security Guide's pattern: check, then use the brokered service.
    if not ctx.has_permission("database_read"):
        raise PermissionError("Database read permission required")
    db = ctx.get_service("database")
    rows = db.query("SELECT COUNT(*) AS n FROM messages")
    return str(rows[0]["n"])


@plugin.on_event("chat.message")
def on_message(ctx: PluginContext, event: Event) -> None:
    greeted = ctx.emit_json("greeted", {"reply_to": event.id, "text": "Hello from hello!"})
    ctx.logger.info("greeted chat message %s as event %s", event.id, greeted)


if __name__ == "__main__":
    plugin.run()
