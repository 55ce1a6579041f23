#!/usr/bin/env bash
# Builds the Python SDK bundle the supervisor mounts read-only at /sdk for Python
# plugins: plexichat_boot.py, plexichat_plugin/ and the pure-Python dependencies
# (grpclib, h2, hpack, hyperframe, multidict, google.protobuf) copied from where
# `python3` on PATH has them installed, byte-compiled by the interpreter that runs the
# plugins so it never compiles (nor writes) anything of the SDK inside the sandbox.
#
#   scripts/python-sdk-bundle.sh DEST [INTERPRETER]     (INTERPRETER: /usr/bin/python3)
#
# Only .py sources are taken (no native extension, stub, dist-info, test or
# __pycache__ from the source), files 0644 and dirs 0755, pyc as unchecked-hash with
# /sdk paths: the same inputs give byte-identical trees, which the supervisor pins by
# path, mode and SHA-256. DEST is replaced only once the new tree passed its own
# check: importing the SDK under `INTERPRETER -I -S -B` must load nothing from a .so
# in the bundle, nothing from outside the bundle and the standard library, and every
# bundle module from its pyc.
set -euo pipefail

die() { echo "python-sdk-bundle: $*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] && [ -n "$1" ] || die "usage: $0 DEST [INTERPRETER]"
DEST=$1
INTERPRETER=${2:-/usr/bin/python3}
# Where the bundle is mounted in the sandbox: the paths compiled into the pyc files.
MOUNT=/sdk
# Top-level packages copied from python3's site-packages, as import names.
DEPS=(grpclib h2 hpack hyperframe multidict google.protobuf)
# Directories never shipped: tests, test data, and grpclib's protoc plugin (a build
# tool, never imported by a plugin).
SKIP_DIRS=(__pycache__ tests test testdata grpclib/plugin)

[ -x "$INTERPRETER" ] || die "the interpreter $INTERPRETER is not an executable file"
command -v python3 >/dev/null || die "python3 is not on PATH (it provides the dependencies)"
[ "$(basename -- "$DEST")" != / ] && [ "$DEST" != / ] || die "DEST must not be /"
# The SDK needs 3.11+; its pyc files are only ever read by this interpreter.
interp_version=$("$INTERPRETER" -I -S -c \
    'import sys; assert sys.version_info >= (3, 11); print(sys.version.split()[0], sys.implementation.cache_tag)' \
    2>/dev/null) || die "$INTERPRETER is not a working Python 3.11+ interpreter"

started=$(date +%s%N)
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
src=$repo/plugin-sdk-python/src
[ -f "$src/plexichat_boot.py" ] && [ -d "$src/plexichat_plugin" ] ||
    die "no SDK sources under $src"

parent=$(dirname -- "$DEST")
mkdir -p -- "$parent"
parent=$(cd -- "$parent" && pwd)
name=$(basename -- "$DEST")
DEST=$parent/$name
build=$(mktemp -d "$parent/.$name.build.XXXXXX")
old=""
cleanup() {
    rm -rf -- "$build"
    [ -z "$old" ] || rm -rf -- "$old"
}
trap cleanup EXIT

# Each dependency's directory, from python3's own import system (without running the
# packages: find_spec imports only the parents, e.g. the `google` namespace).
locate() {
    python3 -I - "$@" <<'EOF'
import importlib.util, sys
for name in sys.argv[1:]:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"python3 has no package {name!r} installed (pip install grpclib protobuf)")
    print(name, list(spec.submodule_search_locations)[0])
EOF
}

# .py files of package directory $1 copied to $2 (import name $3), minus SKIP_DIRS:
# one find and one cp per package.
copy_py() {
    local from=$1 to=$2 top=${3%%.*} skip
    local prune=(-name __pycache__)
    for skip in "${SKIP_DIRS[@]}"; do
        case "$skip" in
            "$top"/*) prune+=(-o -path "./${skip#"$top"/}") ;;
            */*) ;;
            *) prune+=(-o -name "$skip") ;;
        esac
    done
    mkdir -p -- "$to"
    (cd -- "$from" && find . -type d \( "${prune[@]}" \) -prune -o -type f -name '*.py' -print0 |
        xargs -0 -r cp --parents -t "$to" --)
}

copy_py "$src/plexichat_plugin" "$build/plexichat_plugin" plexichat_plugin
cp -- "$src/plexichat_boot.py" "$build/plexichat_boot.py"
locations=$(locate "${DEPS[@]}")
while read -r module dir; do
    copy_py "$dir" "$build/${module//.//}" "$module"
done <<<"$locations"

# What went in, for the reviewer: versions as python3's metadata has them.
python3 -I - "$INTERPRETER $interp_version" "$src" >"$build/BUNDLE-VERSIONS.txt" <<'EOF'
import importlib.metadata as md, re, sys
sdk = open(sys.argv[2] + "/plexichat_plugin/plugin.py").read()
print("plexichat-plugin-sdk", re.search(r'^SDK_VERSION = "([^"]+)"', sdk, re.M).group(1))
for dist in ("grpclib", "h2", "hpack", "hyperframe", "multidict", "protobuf"):
    print(dist, md.version(dist))
print("compiled-by", sys.argv[1])
EOF

if find "$build" \( -name '*.so' -o -type l \) -print -quit | grep -q .; then
    die "a native module or symlink got into the bundle: $(find "$build" \( -name '*.so' -o -type l \) | head -3)"
fi
find "$build" -type d -exec chmod 0755 {} +
find "$build" -type f -exec chmod 0644 {} +

# One process, in compileall's sorted order: marshal marks objects by their reference
# counts, which depend on what the compiling process did before; with parallel
# workers (-j) that history would be left to scheduling.
"$INTERPRETER" -I -S -m compileall -q --invalidation-mode unchecked-hash \
    -s "$build" -p "$MOUNT" "$build" >/dev/null ||
    die "$INTERPRETER could not byte-compile the bundle"
find "$build" -type f -exec chmod 0644 {} +

# The bundle checks itself under the sandbox's flags.
PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python MULTIDICT_NO_EXTENSIONS=1 \
"$INTERPRETER" -I -S -B - "$build" <<'EOF' || die "the bundle failed its own check (above)"
import os, sys, sysconfig
root = sys.argv[1]
sys.path.insert(0, root)
import plexichat_plugin, plexichat_plugin.imports, plexichat_boot  # noqa: E401
from google.protobuf.internal import api_implementation
stdlib = [os.path.realpath(sysconfig.get_path(p)) for p in ("stdlib", "platstdlib")]
problems, bundled = [], 0
for name, module in sorted(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or name == "__main__":
        continue
    real = os.path.realpath(path)
    if real.startswith(root + "/"):
        bundled += 1
        if real.endswith(".so"):
            problems.append(f"{name}: a native module in the bundle ({real})")
        cached = getattr(module.__spec__, "cached", None)
        if not cached or not os.path.isfile(cached):
            problems.append(f"{name}: no byte-compiled file beside {real}")
    elif not any(real.startswith(d + "/") for d in stdlib):
        problems.append(f"{name}: loaded from outside the bundle and the stdlib ({real})")
if api_implementation.Type() != "python":
    problems.append(f"protobuf runs its {api_implementation.Type()} implementation, not python")
if problems:
    sys.exit("\n".join(problems))
print(f"check: {bundled} bundle modules load from their pyc; protobuf python; no .so")
EOF

if [ -e "$DEST" ]; then
    old=$(mktemp -u "$parent/.$name.old.XXXXXX")
    mv -T -- "$DEST" "$old"
fi
mv -T -- "$build" "$DEST"

files=$(find "$DEST" -type f | wc -l)
bytes=$(find "$DEST" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
elapsed=$(( ($(date +%s%N) - started) / 1000000 ))
echo "python-sdk-bundle: $DEST: $files files, $bytes bytes, built in ${elapsed} ms"
