package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usage-rollup/usage-rollup/internal/loadgen"
)

func TestRunDryRun(t *testing.T) {
	expFile := filepath.Join(t.TempDir(), "expected.json")
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-dry-run", "-count", "50", "-seed", "9", "-expected", expFile}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v (stderr: %s)", err, stderr.String())
	}
	if lines := strings.Count(stdout.String(), "\n"); lines != 50 {
		t.Errorf("dry run wrote %d lines, want 50", lines)
	}
	if !strings.Contains(stderr.String(), "ALL") {
		t.Errorf("no totals table on stderr:\n%s", stderr.String())
	}
	b, err := os.ReadFile(expFile)
	if err != nil {
		t.Fatal(err)
	}
	var exp loadgen.Expected
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatalf("decode %s: %v", expFile, err)
	}
	if exp.Sent != 50 || exp.Seed != 9 || exp.Overall.Requests != uint64(exp.Accepted) {
		t.Errorf("expected file: sent %d, seed %d, requests %d, accepted %d", exp.Sent, exp.Seed, exp.Overall.Requests, exp.Accepted)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	cases := [][]string{
		{"-late-ratio", "2"},
		{"-count", "-1"},
		{"-start", "yesterday"},
		{"-create-partitions", "-1"},
		{"extra-arg"},
	}
	for _, args := range cases {
		var out bytes.Buffer
		if err := run(t.Context(), append(args, "-dry-run"), &out, &out); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
