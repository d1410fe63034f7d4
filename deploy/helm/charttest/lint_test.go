package charttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// helmVersion is the Helm release whose SDK renders the chart in these tests and whose binary
// ../test.sh installs (go install helm.sh/helm/v3/cmd/helm@<helmVersion>).
const helmVersion = "v3.22.0"

// findHelm returns the helm binary on PATH or in Go's install directory.
func findHelm() string {
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	var dirs []string
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		// One line per variable; GOBIN is usually empty, so trim only the
		// final newline, never the leading empty line.
		lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
		if len(lines) == 2 {
			if lines[0] != "" {
				dirs = append(dirs, lines[0])
			}
			for _, p := range filepath.SplitList(lines[1]) {
				dirs = append(dirs, filepath.Join(p, "bin"))
			}
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "helm")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// TestHelmLint runs `helm lint --strict` on the chart with several value sets. Without a helm
// binary it skips, unless USAGE_ROLLUP_REQUIRE_SERVICES=1 (as in scripts/test.sh and CI).
func TestHelmLint(t *testing.T) {
	helm := findHelm()
	if helm == "" {
		msg := "no helm binary on PATH or in $(go env GOPATH)/bin; install it with: go install helm.sh/helm/v3/cmd/helm@" + helmVersion
		if os.Getenv("USAGE_ROLLUP_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if out, err := exec.Command(helm, "version", "--short").Output(); err == nil {
		t.Logf("%s: %s", helm, strings.TrimSpace(string(out)))
	}
	for _, name := range []string{"defaults", "tls+sasl", "chart-secret", "monitoring", "migration-off", "scheduling"} {
		t.Run(name, func(t *testing.T) {
			valuesFile := filepath.Join(t.TempDir(), "values.yaml")
			if err := os.WriteFile(valuesFile, []byte(valueSets[name]+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(helm, "lint", "--strict", "--namespace", namespace, "-f", valuesFile, chartDir).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "0 chart(s) failed") {
				t.Errorf("helm lint --strict: %v\n%s", err, out)
			}
		})
	}
}
