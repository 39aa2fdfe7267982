package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/search"
	"github.com/infomax/infomax/testkit/testmodel"
)

// The embed binary refuses, before any pipeline, a run folder that does not
// open and inputs that match no image: a non-zero exit and one line naming
// the flag, no Beam plan dump; a good job prints no INFO lines.
func TestEmbedChecksBeforeThePipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the embed binary")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "embed")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	runDir, err := testmodel.Run(filepath.Join(tmp, "run"))
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(tmp, "empty")
	os.MkdirAll(filepath.Join(empty, "sub"), 0o755)
	os.WriteFile(filepath.Join(empty, "sub", "notes.txt"), []byte("not an image"), 0o644)
	images := imageFolder(t, 4)
	notRun := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		ok   bool
		want string
	}{
		{"missing run folder", []string{"--run-dir", filepath.Join(tmp, "nope"), "--input", images}, false, "--run-dir: run folder"},
		{"not a run folder", []string{"--run-dir", notRun, "--input", images}, false, "is not a run folder"},
		{"no image matches", []string{"--run-dir", runDir, "--input", empty}, false, "matches"},
		{"a glob matching nothing", []string{"--run-dir", runDir, "--input", filepath.Join(tmp, "none", "*.jpg")}, false, "no image"},
		{"a good job", []string{"--run-dir", runDir, "--input", images}, true, "embed: "},
	} {
		out := filepath.Join(t.TempDir(), "out")
		cmd := exec.Command(bin, append(c.args, "--output", out, "--shards", "2")...)
		cmd.Dir = t.TempDir() // an unrelated working directory
		got, err := cmd.CombinedOutput()
		text := strings.TrimSpace(string(got))
		if (err == nil) != c.ok {
			t.Errorf("%s: exit %v, want success %v:\n%s", c.name, err, c.ok, text)
			continue
		}
		if !strings.Contains(text, c.want) || strings.Contains(text, "level=INFO") {
			t.Errorf("%s: output\n%s\nwant %q and no INFO lines", c.name, text, c.want)
		}
		if !c.ok && strings.Count(text, "\n") > 0 {
			t.Errorf("%s: %d lines, want one:\n%s", c.name, strings.Count(text, "\n")+1, text)
		}
		if _, err := os.Stat(filepath.Join(out, search.ParquetEmbeddingFile)); (err == nil) != c.ok {
			t.Errorf("%s: _embedding.json written: %v", c.name, err == nil)
		}
	}
}
