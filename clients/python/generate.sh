#!/usr/bin/env bash
# Generates the Python gRPC stubs of the public Lethe API into lethe_client/_generated/
# (not committed; importing lethe_client also does this when they are missing or stale).
#
# Runs, through lethe_client/_stubs.py:
#   $PYTHON -m grpc_tools.protoc -I <repo>/proto -I <grpc_tools>/_proto \
#     --python_out=OUT --grpc_python_out=OUT lethe/v1/common.proto lethe/v1/coordinator.proto
# and, when that protoc predates proto3 `optional` (Debian's python3-grpc-tools 1.14), repeats it
# on copies of the .proto files with each optional field written as a one-field oneof.
#
# Usage: clients/python/generate.sh [--force] [--out DIR] [--proto-dir DIR]
#   PYTHON: the interpreter with grpcio and grpc_tools (default /usr/bin/python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-/usr/bin/python3}"

if ! "$python" -c 'import grpc, grpc_tools' 2>/dev/null; then
  echo "error: $python lacks grpcio or grpc_tools" \
    "(apt-get install python3-grpcio python3-grpc-tools)" >&2
  exit 1
fi

# --force by default: running the script means "regenerate now".
exec "$python" "$here/lethe_client/_stubs.py" --force "$@"
