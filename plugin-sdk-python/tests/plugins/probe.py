"""A test plugin reporting on its own process: which protobuf implementation runs
and which native extension modules are loaded."""

from __future__ import annotations

import sys

from plexichat_plugin import Plugin, PluginContext

plugin = Plugin()


@plugin.command("native-modules")
def native_modules(ctx: PluginContext, args: bytes) -> str:
    from google.protobuf.internal import api_implementation

    native = sorted(
        name
        for name, module in list(sys.modules.items())
        if (getattr(module, "__file__", None) or "").endswith(".so")
    )
    return f"protobuf={api_implementation.Type()} native={' '.join(native)}"


if __name__ == "__main__":
    plugin.run()
