package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	binDir      string
	binOnce     sync.Once
	binPath     string
	binBuildErr error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// runnerBinary builds the runner once for the tests that run it as a process.
func runnerBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binBuildErr = os.MkdirTemp("", "infomax-runner-test-"); binBuildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "runner")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binBuildErr = &buildError{err, out}
		}
	})
	if binBuildErr != nil {
		t.Fatal(binBuildErr)
	}
	return binPath
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + string(e.out) }

// command runs the runner binary with the environment of a plain shell as
// far as TensorFlow's logging goes: neither TF_CPP_MIN_LOG_LEVEL nor
// INFOMAX_VERBOSE set, plus extra.
func command(t *testing.T, extra []string, args ...string) *exec.Cmd {
	cmd := exec.Command(runnerBinary(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TF_CPP_MIN_LOG_LEVEL=") && !strings.HasPrefix(kv, "INFOMAX_VERBOSE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, extra...)
	return cmd
}

// TensorFlow's own log lines (those its library prints while loading, those
// of loading a SavedModel, Abseil's MLIR line) stay off a command's output
// unless asked for with INFOMAX_VERBOSE=1 or --verbose.
func TestTensorFlowLogsQuietUnlessVerbose(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the runner binary")
	}
	cfg := smallRun(t, "")
	tfLines := []string{"Reading SavedModel from", "SavedModel load for tags", "mlir_graph_optimization_pass", "absl::InitializeLog"}
	run := func(name string, env []string, args ...string) string {
		t.Helper()
		cmd := command(t, env, append([]string{"train", "--config", cfg, "--run-dir", filepath.Join(t.TempDir(), "run"), "--max-steps", "2"}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out.String())
		}
		return out.String()
	}
	quiet := run("default", nil)
	for _, l := range tfLines {
		if strings.Contains(quiet, l) {
			t.Errorf("default output has TensorFlow's %q:\n%s", l, quiet)
		}
	}
	if !strings.Contains(quiet, "1-NN") {
		t.Errorf("default output lacks the report:\n%s", quiet)
	}
	for name, c := range map[string]struct {
		env  []string
		args []string
	}{"INFOMAX_VERBOSE=1": {env: []string{"INFOMAX_VERBOSE=1"}}, "--verbose": {args: []string{"--verbose"}}} {
		if out := run(name, c.env, c.args...); !strings.Contains(out, "Reading SavedModel from") {
			t.Errorf("%s: TensorFlow's log lines missing:\n%s", name, out)
		}
	}
}
