#!/usr/bin/env bash
# Regenerates the Python stubs from broker-proto/proto with grpcio-tools' protoc:
# the admin client's (python/, grpcio) from admin.proto and the plugin SDK's
# (plugin-sdk-python/, grpclib) from broker.proto. `--check DIR` writes both under
# DIR instead, for the staleness test.
set -euo pipefail
cd "$(dirname "$0")/.."
client_out=python/src
sdk_out=plugin-sdk-python/src
if [ "${1:-}" = "--check" ]; then
  client_out=$2
  sdk_out=$2
fi

# The virtual include path makes the generated modules import each other as
# `<package>._proto.x` instead of a top-level `x`.
generate() { # out package proto plugin-flags...
  local out=$1 pkg=$2/_proto proto=$3
  shift 3
  mkdir -p "$out/$pkg"
  python3 -m grpc_tools.protoc -I "$pkg=broker-proto/proto" \
    --python_out="$out" --pyi_out="$out" "$@" "$pkg/$proto"
}

generate "$client_out" plexichat_supervisor admin.proto --grpc_python_out="$client_out"
generate "$sdk_out" plexichat_plugin broker.proto \
  --plugin=protoc-gen-grpclib_python="$(command -v protoc-gen-grpclib_python)" \
  --grpclib_python_out="$sdk_out"
