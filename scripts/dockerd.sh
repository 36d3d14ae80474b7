#!/usr/bin/env bash
# Makes sure a Docker daemon answers, for the Docker runtime's tests and drills (CI runs it as root).
# Installs Debian's docker.io when dockerd is missing, starts dockerd without its default bridge and
# without touching iptables (the agent's containers use the host's network or a loopback-only one), and waits for its
# socket. Does nothing when a daemon already answers, so it is safe to run again.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  echo "dockerd: a daemon already answers."
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "dockerd: no Docker daemon answers and this is not root; start one (dockerd --bridge=none --iptables=false)" >&2
  exit 1
fi
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
log=${DOCKERD_LOG:-/var/log/agent-drills-dockerd.log}
nohup dockerd --bridge=none --iptables=false >"$log" 2>&1 &
for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then
    echo "dockerd: started (log: $log)."
    exit 0
  fi
  sleep 0.5
done
echo "dockerd: did not answer within 60 s; see $log" >&2
tail -20 "$log" >&2 || true
exit 1
