#!/usr/bin/env bash
# The kind smoke test (make kind-smoke): a kind cluster with Calico, both images built and
# loaded, the chart installed with the development IAM beside the hub, then tests/kind.
# Needs Docker, kind and network access to the chart repositories; it does not run on
# machines without a Docker engine.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.venv
CLUSTER=${KIND_CLUSTER:-facility-smoke}
NAMESPACE=facility
CALICO=https://raw.githubusercontent.com/projectcalico/calico/v3.29.3/manifests/calico.yaml
export PATH="$PWD/$VENV/bin:$PATH"

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind-smoke needs $tool on PATH" >&2; exit 1; }
done

cleanup() {
  kill "${FORWARDS[@]}" 2>/dev/null || true
  [ -n "${KEEP_CLUSTER:-}" ] || kind delete cluster --name "$CLUSTER"
}
FORWARDS=()
trap cleanup EXIT

kind create cluster --name "$CLUSTER" --config charts/kind/cluster.yaml --wait 0s
kubectl apply -f "$CALICO"
kubectl -n kube-system rollout status daemonset/calico-node --timeout=300s

for image in hub analysis devidp; do
  docker build -f "images/$image/Dockerfile" -t "analysis-facility/$image:smoke" .
  kind load docker-image --name "$CLUSTER" "analysis-facility/$image:smoke"
done

kubectl create namespace "$NAMESPACE"
kubectl -n "$NAMESPACE" apply -f charts/kind/devidp-config.yaml
make upgrade NAMESPACE="$NAMESPACE" RELEASE=facility VALUES=charts/kind/smoke-values.yaml
helm test facility -n "$NAMESPACE" --timeout 5m

kubectl -n "$NAMESPACE" port-forward deploy/hub 8001:8001 >/dev/null & FORWARDS+=($!)
kubectl -n "$NAMESPACE" port-forward svc/proxy-public 8000:80 >/dev/null & FORWARDS+=($!)
sleep 5
FACILITY_KIND_SMOKE=1 FACILITY_URL=http://127.0.0.1:8000 FACILITY_NAMESPACE="$NAMESPACE" \
  "$VENV/bin/python" -m pytest -ra tests/kind
