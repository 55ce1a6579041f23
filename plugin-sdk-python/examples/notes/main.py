"""The `notes` example plugin in Python, twin of plugin-sdk/examples/notes: `note
<text>` stores a note (database_write on `notes`), `recent` lists the last ten (a
table the plugin may write it may also read) and `count` counts the server's messages
(database_read on `messages`).
"""

from __future__ import annotations

from plexichat_plugin import PermissionDenied, Plugin, PluginContext

plugin = Plugin()
RECENT = 10


def text(args: bytes) -> str:
    try:
        return args.decode()
    except UnicodeDecodeError:
        raise ValueError("arguments must be UTF-8") from None


@plugin.command("note")
def note(ctx: PluginContext, args: bytes) -> str:
    # Always a bound parameter: the text is data, whatever it contains.
    n = ctx.get_service("database").execute("INSERT INTO notes (text) VALUES (?1)", [text(args)])
    return f"stored {n}"


@plugin.command("recent")
def recent(ctx: PluginContext, args: bytes) -> str:
    rows = ctx.get_service("database").query(
        "SELECT text FROM notes ORDER BY id DESC LIMIT ?1", [RECENT]
    )
    # A NULL text is skipped, not printed as an empty line.
    return "\n".join(str(row["text"]) for row in rows if row["text"] is not None)


@plugin.command("count")
def count(ctx: PluginContext, args: bytes) -> str:
    try:
        rows = ctx.get_service("database").query("SELECT count(*) AS n FROM messages")
    except PermissionDenied as err:
        # Without the grant the broker says which permission and table.
        return f"not allowed: {err}"
    return str(rows[0]["n"]) if rows else "0"


if __name__ == "__main__":
    plugin.run()
