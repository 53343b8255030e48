#!/bin/sh
# Entry point of the worker images. The worker listens on 0.0.0.0, so its own default for the
# address the coordinator dials (host:port it bound) would be useless: unless it is given, this
# sets it to this container's hostname and port, and the worker's name to the hostname. Flags win
# over these variables (see apps/worker/src/config.ts), so `--advertise`/`--name` still override.
# Under Docker (compose included) the hostname is the short container id, which Docker's DNS
# resolves on the project network; Kubernetes passes both flags explicitly (see deploy/helm).
set -eu

host_name="${HOSTNAME:-$(hostname)}"
if [ -z "${LETHE_WORKER_ADVERTISE:-}" ]; then
  LETHE_WORKER_ADVERTISE="${host_name}:${LETHE_WORKER_PORT:-7071}"
  export LETHE_WORKER_ADVERTISE
fi
if [ -z "${LETHE_WORKER_NAME:-}" ]; then
  LETHE_WORKER_NAME="$host_name"
  export LETHE_WORKER_NAME
fi

exec node /opt/lethe/apps/worker/dist/main.js "$@"
