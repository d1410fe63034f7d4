#!/usr/bin/env bash
# Tests of the Helm chart, the monitoring files and the image's static build
# (deploy/helm/charttest, a Go module of its own). Installs the helm binary
# for `helm lint --strict` with `go install` when it is missing. Extra
# arguments go to `go test`, e.g. ./deploy/helm/test.sh -run TestMigrations -v
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# The same Helm release as the SDK in charttest/go.mod (lint_test.go: helmVersion).
HELM_VERSION=v3.22.0

gobin="$(go env GOBIN)"
[ -n "$gobin" ] || gobin="$(go env GOPATH | cut -d: -f1)/bin"
export PATH="$gobin:$PATH" # where go install puts helm; the lint test looks it up on PATH
if ! command -v helm >/dev/null 2>&1; then
  echo "== go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION (into $gobin)"
  go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi

cd "$here/charttest"
export GOWORK=off
echo "== go vet (deploy/helm/charttest)"
go vet ./...
echo "== go test (deploy/helm/charttest)"
go test -count=1 -timeout 20m "$@" ./...
