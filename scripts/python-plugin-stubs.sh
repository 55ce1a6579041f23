#!/usr/bin/env bash
# Regenerates the Python plugin SDK's broker stubs from broker-proto/proto/broker.proto
# (grpcio-tools' protoc with grpclib's plugin). `--check DIR` writes them to DIR instead.
set -euo pipefail
cd "$(dirname "$0")/.."
out=plugin-sdk-python/src
if [ "${1:-}" = "--check" ]; then
  out=$2
fi
pkg=plexichat_plugin/_proto
mkdir -p "$out/$pkg"
python3 -m grpc_tools.protoc \
  -I "$pkg=broker-proto/proto" \
  --plugin=protoc-gen-grpclib_python="$(command -v protoc-gen-grpclib_python)" \
  --python_out="$out" --pyi_out="$out" --grpclib_python_out="$out" \
  "$pkg/broker.proto"
