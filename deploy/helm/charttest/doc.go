// Package charttest tests the Helm chart in ../usage-rollup, the monitoring files in
// ../../monitoring and the static build the repository's Dockerfile relies on.
//
// It is its own module so that the Helm SDK and the Kubernetes API types stay out of the
// service's go.mod. Run it with ../test.sh, or `go test ./...` in this directory.
package charttest
