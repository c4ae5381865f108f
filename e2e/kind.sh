#!/usr/bin/env bash
# The e2e scenarios on kind, for hosts with Docker (this project's CI machine has none,
# so this script is not run there; the same scenarios run on the local cluster instead).
#
#   e2e/kind.sh [PYTEST ARGS...]
#
# Creates a kind cluster (Kubernetes 1.34), builds the OpenFiles image with Docker from
# Containerfile and loads it into the node, starts MinIO in a container on kind's Docker
# network, runs `pytest e2e --cluster=kind`, and deletes what it made (keep it all with
# OPENFILES_E2E_KEEP=1). Needs docker, kind, kubectl and helm on PATH, and the project's
# venv (scripts/bootstrap.sh). The sidecar images are pulled from registry.k8s.io.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NAME="${OPENFILES_KIND_NAME:-openfiles-e2e}"
NODE_IMAGE="${OPENFILES_KIND_NODE_IMAGE:-kindest/node:v1.34.0}"
MINIO_IMAGE="${OPENFILES_KIND_MINIO_IMAGE:-quay.io/minio/minio:latest}"
VERSION="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/openfiles/Chart.yaml)"
WORK="$(mktemp -d)"

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind.sh: $tool is not on PATH" >&2; exit 1; }
done
[[ -x .venv/bin/python ]] || { echo "kind.sh: run scripts/bootstrap.sh first (the venv)" >&2; exit 1; }

cleanup() {
  if [[ "${OPENFILES_E2E_KEEP:-}" != 1 ]]; then
    docker rm -f "$NAME-minio" >/dev/null 2>&1 || true
    kind delete cluster --name "$NAME" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

kind create cluster --name "$NAME" --image "$NODE_IMAGE" --kubeconfig "$WORK/kubeconfig" --wait 120s
docker build -t "localhost/openfiles:$VERSION" -f Containerfile .
kind load docker-image --name "$NAME" "localhost/openfiles:$VERSION"

ACCESS_KEY="of-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SECRET_KEY="$(head -c 24 /dev/urandom | base64 | tr -d '/+=\n')"
docker run -d --name "$NAME-minio" --network kind -p 127.0.0.1::9000 \
  -e MINIO_ROOT_USER="$ACCESS_KEY" -e MINIO_ROOT_PASSWORD="$SECRET_KEY" \
  "$MINIO_IMAGE" server /data >/dev/null
MINIO_IP="$(docker inspect -f '{{(index .NetworkSettings.Networks "kind").IPAddress}}' "$NAME-minio")"
MINIO_PORT="$(docker port "$NAME-minio" 9000/tcp | head -n1 | sed 's/.*://')"
for _ in $(seq 60); do
  curl -fsS "http://127.0.0.1:$MINIO_PORT/minio/health/ready" >/dev/null 2>&1 && break
  sleep 1
done

export OPENFILES_E2E_KUBECONFIG="$WORK/kubeconfig"
export OPENFILES_E2E_KUBECTL="$(command -v kubectl)" OPENFILES_E2E_HELM="$(command -v helm)"
export OPENFILES_E2E_S3_ENDPOINT="http://127.0.0.1:$MINIO_PORT"
export OPENFILES_E2E_S3_CLUSTER_ENDPOINT="http://$MINIO_IP:9000"
export OPENFILES_E2E_RESTART_KUBELET="docker exec $NAME-control-plane systemctl restart kubelet"
export OPENFILES_E2E_S3_ACCESS_KEY="$ACCESS_KEY" OPENFILES_E2E_S3_SECRET_KEY="$SECRET_KEY"
.venv/bin/python -m pytest e2e --cluster=kind "$@"
