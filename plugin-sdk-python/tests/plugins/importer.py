"""A test plugin that imports on command, three ways: an import statement, importlib
and an import that fails, so the boot script's import monitoring can be checked."""

from __future__ import annotations

import importlib

from plexichat_plugin import Plugin, PluginContext

plugin = Plugin()


@plugin.command("import-stmt")
def import_stmt(ctx: PluginContext, args: bytes) -> str:
    import colorsys  # the point: a first import, inside a handler
    import json  # already loaded by the SDK: not new, not reported

    return json.dumps(colorsys.rgb_to_hsv(1.0, 0.0, 0.0))


@plugin.command("import-module")
def import_module(ctx: PluginContext, args: bytes) -> str:
    return str(importlib.import_module(args.decode()).__name__)


@plugin.command("import-missing")
def import_missing(ctx: PluginContext, args: bytes) -> str:
    try:
        import plexichat_no_such_module  # type: ignore[import-not-found]  # noqa: F401
    except ImportError as err:
        return f"failed as expected: {err}"
    return "imported?"


@plugin.command("import-many")
def import_many(ctx: PluginContext, args: bytes) -> str:
    # Distinct failed attempts, more than one report may carry (256).
    for i in range(int(args)):
        try:
            __import__(f"plexichat_missing_{i}")
        except ImportError:
            pass
    return "done"


if __name__ == "__main__":
    plugin.run()
