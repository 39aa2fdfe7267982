package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/infomax/infomax/encoder"
	"github.com/infomax/infomax/exporter"
	"github.com/infomax/infomax/search"
	"github.com/infomax/infomax/testkit/testmodel"
)

// readOnly makes dir read-only for this process: chmod for a user, and for
// root (whom permissions do not stop) a read-only bind mount of the folder
// on itself, undone when the test ends.
func readOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil {
				mode := os.FileMode(0o444)
				if d.IsDir() {
					mode = 0o555
				}
				os.Chmod(p, mode)
			}
			return err
		})
		t.Cleanup(func() { exec.Command("chmod", "-R", "u+w", dir).Run() })
		return
	}
	if out, err := exec.Command("mount", "--bind", dir, dir).CombinedOutput(); err != nil {
		t.Skipf("root cannot be kept from writing without a read-only bind mount, and mount refused: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	if out, err := exec.Command("mount", "-o", "remount,bind,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "probe"), nil, 0o644); err == nil {
		t.Fatal("the read-only folder took a write")
	}
}

// A run folder is an artifact: copied to a path with a space and non-ASCII
// letters and made read-only, it encodes, indexes, searches and evaluates
// (output elsewhere) from an unrelated working directory, and what must
// write says where and why; a writable copy, moved too, resumes training,
// and its losses equal the original's continuation.
func TestRunFolderIsRelocatable(t *testing.T) {
	cfgPath := smallRun(t, "")
	orig := filepath.Join(t.TempDir(), "orig")
	var out bytes.Buffer
	if err := runTrain(context.Background(), trainOptions{ConfigFile: cfgPath, RunDir: orig, MaxSteps: 20}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	origReport := readReport(t, orig)

	base := filepath.Join(t.TempDir(), "dossier été", "copie à lire")
	ro, rw := filepath.Join(base, "run ü"), filepath.Join(base, "run ß écrit")
	for _, dst := range []string{ro, rw} {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(dst, os.DirFS(orig)); err != nil {
			t.Fatal(err)
		}
		// As on another machine: the export the run was made from is not
		// there (a default config's export_dir is relative, exports/NAME).
		cfg := filepath.Join(dst, "config.yaml")
		raw, _ := os.ReadFile(cfg)
		raw = []byte(strings.Replace(string(raw), "export_dir: "+mustConfigExport(t, orig), "export_dir: exports/small", 1))
		if !strings.Contains(string(raw), "export_dir: exports/small") {
			t.Fatalf("no export_dir in %s", cfg)
		}
		os.WriteFile(cfg, raw, 0o644)
	}
	readOnly(t, ro)

	// Images to index and an output folder, away from the run.
	elsewhere := t.TempDir()
	fm := testmodel.FashionMNISTSet(t, 8)
	images := filepath.Join(elsewhere, "images")
	os.MkdirAll(images, 0o755)
	for i := 0; i < fm.Len(); i++ {
		os.WriteFile(filepath.Join(images, "img"+string(rune('a'+i))+".png"), testmodel.UpscaledPNG(fm, i), 0o644)
	}
	t.Chdir(t.TempDir()) // an unrelated working directory, no project above it

	// Encode: the copy's features are the original's.
	a, err := encoder.Load(t.Context(), orig)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := encoder.Load(t.Context(), ro)
	if err != nil {
		t.Fatalf("encoder.Load of the read-only copy: %v", err)
	}
	defer b.Close()
	files, _ := filepath.Glob(filepath.Join(images, "*.png"))
	fa, err := a.EncodeFiles(t.Context(), files...)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := b.EncodeFiles(t.Context(), files...)
	if err != nil {
		t.Fatal(err)
	}
	if b.Step != 20 || len(fa) != len(fb) || !slices.Equal(fa, fb) {
		t.Errorf("the copy (step %d) encodes differently from the original", b.Step)
	}

	// Index and search, the index written elsewhere.
	idx := filepath.Join(elsewhere, "index", "images.idx")
	os.MkdirAll(filepath.Dir(idx), 0o755)
	out.Reset()
	if err := runIndex(t.Context(), indexOptions{RunDir: ro, Images: images, Out: idx}, &out); err != nil {
		t.Fatalf("index with the read-only copy: %v", err)
	}
	out.Reset()
	if err := runSearch(t.Context(), searchOptions{Index: idx, Query: files[3], K: 2, Metric: "cosine", JSON: true}, &out); err != nil {
		t.Fatalf("search: %v", err)
	}
	var hits []search.Hit
	if err := json.Unmarshal(out.Bytes(), &hits); err != nil || len(hits) != 2 || hits[0].Path != files[3] {
		t.Errorf("search hits %s (%v): want %s first", out.String(), err, files[3])
	}

	// Evaluate, the report sent elsewhere: the original's figures, as on a
	// machine without this source tree: no project root (INFOMAX_ROOT names
	// a folder without pyexport/), the probe's program from the run's own
	// model/ (its export carries it), the probes' exports in the user's
	// cache folder, and a Python with TensorFlow named by INFOMAX_PYTHON.
	t.Setenv(exporter.PythonEnv, testmodel.Python(t))
	t.Setenv(exporter.RootEnv, t.TempDir())
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	if _, err := exporter.Root(); err == nil {
		t.Fatal("the source tree is still found")
	}
	evalOut := filepath.Join(elsewhere, "eval")
	out.Reset()
	if err := runEval(t.Context(), evalOptions{RunDirs: []string{ro}, Out: evalOut}, &out); err != nil {
		t.Fatalf("eval of the read-only copy: %v\n%s", err, out.String())
	}
	rep := readReport(t, evalOut)
	if *rep.Model.KNN != *origReport.Model.KNN || rep.Model.Probe.Accuracy != origReport.Model.Probe.Accuracy {
		t.Errorf("the copy's evaluation %+v, the original's %+v", *rep.Model.KNN, *origReport.Model.KNN)
	}
	if probes, _ := filepath.Glob(filepath.Join(cache, "infomax", "probes", "probe-*", "probe.json")); len(probes) == 0 {
		t.Errorf("no probe exported into the user's cache folder %s", cache)
	}

	// What must write into the run folder says so.
	for name, err := range map[string]error{
		"eval into the run": runEval(t.Context(), evalOptions{RunDirs: []string{ro}}, new(bytes.Buffer)),
		"train on":          runTrain(t.Context(), trainOptions{RunDir: ro, Resume: true, MaxSteps: 30}, new(bytes.Buffer)),
	} {
		if err == nil || !strings.Contains(err.Error(), ro) || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("%s on the read-only copy: %v, want an error naming the folder and why", name, err)
		}
	}

	// The writable copy trains on from here; the original in place: the same losses.
	for _, dir := range []string{orig, rw} {
		out.Reset()
		if err := runTrain(context.Background(), trainOptions{RunDir: dir, Resume: true, MaxSteps: 40, Flags: flags(t, "--eval.after_training=false")}, &out); err != nil {
			t.Fatalf("resume %s: %v\n%s", dir, err, out.String())
		}
	}
	mo, mc := readMetrics(t, orig), readMetrics(t, rw)
	sameLosses(t, "the moved copy's continuation", mc, mo)
	if n := len(mc); n == 0 || mc[n-1].Step != 40 {
		t.Errorf("the copy's metrics end at %+v, want step 40", mc[len(mc)-1])
	}
}
