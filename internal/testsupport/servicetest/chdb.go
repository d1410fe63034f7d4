package servicetest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// chdbCheck is scripts/chdb_check.py, found from this file so that tests in
// any package can run it.
func chdbCheck() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "scripts", "chdb_check.py")
}

// NeedChDB returns the version of the ClickHouse embedded in chDB (Python),
// a current engine the tests check SQL on; it skips or fails like Need when
// python3 with chdb is missing (scripts/chdb.sh install).
func NeedChDB(t testing.TB) string {
	t.Helper()
	if err := exec.Command("python3", "-c", "import chdb").Run(); err != nil {
		Unavailable(t, "python3 with chdb is not available (scripts/chdb.sh install): %v", err)
		return ""
	}
	out, err := exec.Command("python3", chdbCheck(), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", chdbCheck(), err, out)
	}
	return strings.TrimSpace(string(out))
}

// RunScript hands input to a Python script the way the chDB scripts take it:
// input is written as JSON to the file name in a new temporary directory, and
// python3 runs script with args followed by that directory. It returns what
// the script printed on stdout; when the script fails, the test fails with
// both its stdout and its stderr.
func RunScript(t testing.TB, script, name string, input any, args ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	data, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "python3", append(append([]string{script}, args...), dir)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s%s", script, err, out, stderr.String())
	}
	return out
}
