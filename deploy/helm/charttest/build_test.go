package charttest

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// buildFlags are the flags of the Dockerfile's `go build` (TestDockerfile checks they are there).
var buildFlags = []string{"build", "-trimpath", "-ldflags", "-s -w"}

// TestStaticBuild builds ./cmd/consumer the way the Dockerfile does, from the Docker build
// context that .dockerignore leaves, and checks the binary can run on distroless/static: no
// dynamic loader, no shared libraries.
func TestStaticBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the service; skipped with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	root, err := filepath.Abs(repoPath())
	if err != nil {
		t.Fatal(err)
	}
	buildCtx := dockerContext(t, root)
	bin := filepath.Join(t.TempDir(), "usage-rollup")
	cmd := exec.Command(goBin, append(buildFlags, "-o", bin, "./cmd/consumer")...)
	cmd.Dir = buildCtx
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go %s ./cmd/consumer (in the Docker build context): %v\n%s",
			strings.Join(buildFlags, " "), err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has a %v program header: it is dynamically linked", p.Type)
		}
	}
	if needed, err := f.DynString(elf.DT_NEEDED); err == nil && len(needed) > 0 {
		t.Errorf("binary needs shared libraries %v", needed)
	}
	if f.Section(".symtab") != nil {
		t.Errorf("binary has a symbol table: -ldflags -s was not applied")
	}
	for _, s := range f.Sections {
		if strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Errorf("binary has DWARF section %s: -ldflags -w was not applied", s.Name)
			break
		}
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	// (-ldflags is not recorded with -trimpath: see the symbol table and DWARF checks above.)
	for k, want := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true"} {
		if settings[k] != want {
			t.Errorf("build setting %s=%q, want %q", k, settings[k], want)
		}
	}
	raw := readFile(t, bin)
	if bytes.Contains(raw, []byte(buildCtx)) {
		t.Errorf("binary contains the build directory %s: -trimpath was not applied", buildCtx)
	}

	// It runs, and without configuration it stops naming the missing variable.
	if runtime.GOOS == "linux" {
		run := exec.Command(bin)
		run.Env = []string{"PATH=/nonexistent"}
		out, err := run.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "KAFKA_BROKERS") {
			t.Errorf("binary without KAFKA_BROKERS: err %v, output %s", err, out)
		}
	}
}

// dockerContext copies what .dockerignore lets into the Docker build context to a temporary
// directory, so the build proves the context holds everything the binary needs.
func dockerContext(t *testing.T, root string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		excluded, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		switch {
		case excluded && d.IsDir() && !pm.Exclusions():
			return filepath.SkipDir
		case excluded:
			return nil
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		case !d.Type().IsRegular():
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"go.mod", "go.sum", "cmd/consumer", "schemas"} {
		if _, err := os.Stat(filepath.Join(dst, must)); err != nil {
			t.Errorf(".dockerignore excludes %s, which the build needs", must)
		}
	}
	for _, mustNot := range []string{".git", "deploy", ".run"} {
		if _, err := os.Stat(filepath.Join(dst, mustNot)); err == nil {
			t.Errorf(".dockerignore lets %s into the build context", mustNot)
		}
	}
	return dst
}

// TestDockerfile checks the Dockerfile against what the chart and the static build assume.
func TestDockerfile(t *testing.T) {
	raw := readFile(t, repoPath("Dockerfile"))
	df := string(raw)
	checks := []struct {
		what string
		re   string
	}{
		{"golang 1.26 builder stage", `(?m)^FROM (--platform=\S+ )?golang:\$\{GO_VERSION\} AS build$`},
		{"GO_VERSION 1.26", `(?m)^ARG GO_VERSION=1\.26$`},
		{"static build", `CGO_ENABLED=0`},
		{"build flags", `go build -trimpath -ldflags "-s -w" -o /out/usage-rollup \./cmd/consumer`},
		{"distroless runtime", `(?m)^FROM gcr\.io/distroless/static-debian12:nonroot$`},
		{"binary copied from the builder", `(?m)^COPY --from=build /out/usage-rollup /usr/local/bin/usage-rollup$`},
		{"non-root user matching the chart's runAsUser", `(?m)^USER 65532:65532$`},
		{"metrics port", `(?m)^EXPOSE 9464$`},
		{"entrypoint", `(?m)^ENTRYPOINT \["/usr/local/bin/usage-rollup"\]$`},
	}
	for _, c := range checks {
		if !regexp.MustCompile(c.re).MatchString(df) {
			t.Errorf("Dockerfile: no %s (%s)", c.what, c.re)
		}
	}
	if n := strings.Count(df, "\nFROM "); n != 2 {
		t.Errorf("Dockerfile has %d stages, want 2 (builder and runtime)", n)
	}
	// The chart's defaults must agree with the image.
	r := mustRender(t, defaultValues)
	c := r.deployment(t).Spec.Template.Spec.Containers[0]
	if *c.SecurityContext.RunAsUser != 65532 || *c.SecurityContext.RunAsGroup != 65532 || c.Ports[0].ContainerPort != 9464 {
		t.Errorf("chart user %d:%d port %d differ from the image's USER 65532:65532 and EXPOSE 9464",
			*c.SecurityContext.RunAsUser, *c.SecurityContext.RunAsGroup, c.Ports[0].ContainerPort)
	}
	if len(c.Command) != 0 {
		t.Errorf("the chart overrides the image's ENTRYPOINT with %v", c.Command)
	}
}
