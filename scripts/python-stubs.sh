#!/usr/bin/env bash
# Regenerates the Python client's gRPC stubs from broker-proto/proto/admin.proto with
# grpcio-tools. `--check DIR` writes them to DIR instead, for the staleness test.
set -euo pipefail
cd "$(dirname "$0")/.."
out=python/src
if [ "${1:-}" = "--check" ]; then
  out=$2
fi
pkg=plexichat_supervisor/_proto
mkdir -p "$out/$pkg"
# The virtual include path makes the generated modules import each other as
# `plexichat_supervisor._proto.x` instead of a top-level `x`.
python3 -m grpc_tools.protoc \
  -I "$pkg=broker-proto/proto" \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  "$pkg/admin.proto"
