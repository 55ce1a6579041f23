"""Starts a Python plugin inside the sandbox: the supervisor runs

    <interpreter> -I -S -B /sdk/plexichat_boot.py /plugin/<entry>

Isolated mode puts nothing but the standard library on sys.path; this script adds the
SDK bundle (its own directory), the plugin package and its `vendor/` directory, loads
the SDK, and only then installs the import audit hook, so what is reported is what the
plugin loads. The entry runs as `__main__`. An exception escaping it prints its
traceback (stderr is the plugin's log) and exits 1.
"""

import os
import sys

# Before anything imports protobuf or multidict: their native extensions are not in
# the SDK bundle, and protobuf would otherwise try to load its upb module.
os.environ["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"
os.environ["MULTIDICT_NO_EXTENSIONS"] = "1"

USAGE = "usage: plexichat_boot.py PLUGIN_ENTRY (a .py file, or a directory with __main__.py)"


def _entry(argv: list[str]) -> str:
    if len(argv) != 2 or not argv[1]:
        raise SystemExit(f"plexichat_boot: {USAGE}; got {argv[1:]!r}")
    path = os.path.abspath(argv[1])
    if not os.path.exists(path):
        raise SystemExit(f"plexichat_boot: the plugin entry {path} does not exist")
    return path


def _paths(entry: str) -> list[str]:
    sdk = os.path.dirname(os.path.abspath(__file__))
    package = entry if os.path.isdir(entry) else os.path.dirname(entry)
    return [sdk, package, os.path.join(package, "vendor")]


def main(argv: list[str]) -> int:
    entry = _entry(argv)
    sys.path[:0] = _paths(entry)
    # The SDK and what this script itself needs, loaded before the hook so they are
    # not reported as the plugin's imports.
    import pkgutil  # noqa: F401  (runpy.run_path imports it lazily)
    import runpy
    import traceback

    import plexichat_plugin  # noqa: F401
    from plexichat_plugin import imports

    imports.install()
    # The plugin sees its own argv as a script run directly would.
    sys.argv = [entry]
    try:
        runpy.run_path(entry, run_name="__main__")
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
