package main

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/internal/store"
	"github.com/infomax/infomax/search"
	"github.com/infomax/infomax/testkit/emulators"
	"github.com/infomax/infomax/testkit/testmodel"
)

// Images in class folders in Google Cloud Storage, one of them hostile,
// embedded into S3 (both stores' real APIs, served in-process by
// fake-gcs-server and gofakes3, reached by the clients that reach the
// clouds): the features equal those of the same images embedded from a
// local folder, each image's class is its folder, the hostile image is
// named in _bad.txt, and `runner search --index s3://…` finds an image's
// nearest neighbours there.
func TestEmbedFromGCSToS3(t *testing.T) {
	emulators.Start(t, "corpus", "features")
	ctx := context.Background()
	tmp := t.TempDir()
	runDir, err := testmodel.Run(filepath.Join(tmp, "run"))
	if err != nil {
		t.Fatal(err)
	}
	folder := imageFolder(t, 36)
	emulators.Upload(t, folder, "gs://corpus/images")
	globs, err := Globs(folder)
	if err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(tmp, "local")
	runPipeline(t, Options{RunDir: runDir, Inputs: globs, Output: local, Shards: 3, Labels: "folders"})
	const out = "s3://features/corpus/embedded"
	runPipeline(t, Options{RunDir: runDir, Inputs: []string{"gs://corpus/images/*/*"}, Output: out, Shards: 3, Labels: "folders"})

	want, err := search.Load(t.Context(), local)
	if err != nil {
		t.Fatal(err)
	}
	got, err := search.Load(t.Context(), out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Paths) != 36 || len(want.Paths) != 36 {
		t.Fatalf("%d images embedded from GCS, %d from the folder: want 36", len(got.Paths), len(want.Paths))
	}
	row := map[string]int{}
	for i, p := range want.Paths {
		rel, _ := filepath.Rel(folder, p)
		row["gs://corpus/images/"+filepath.ToSlash(rel)] = i
	}
	d, maxDiff := got.Features.Dim, 0.0
	for i, p := range got.Paths {
		j, ok := row[p]
		if !ok {
			t.Fatalf("%s: embedded from GCS, not from the folder", p)
		}
		for k := range d {
			maxDiff = math.Max(maxDiff, math.Abs(float64(got.Features.Data[i*d+k]-want.Features.Data[j*d+k])))
		}
	}
	// The same images, met in other batches: where TensorFlow runs Eigen's
	// kernels (oneDNN off, CPUs without AVX-512) a row's sums round by the
	// batch it is in, so the features agree to float32's rounding.
	if maxDiff > 1e-6 {
		t.Errorf("features from GCS differ from the folder's by up to %g", maxDiff)
	}

	if err := check(ctx, Options{RunDir: runDir, Inputs: []string{"gs://corpus/images"}}); err == nil || !strings.Contains(err.Error(), "gs://corpus/images/*/*.jpg") {
		t.Errorf("--input gs://corpus/images (no glob): %v", err)
	}
	bad, err := store.ReadFile(ctx, out+"/_bad.txt", 1<<20)
	if err != nil || !strings.Contains(string(bad), "gs://corpus/images/a/huge.png") || strings.Count(string(bad), "\n") != 1 {
		t.Errorf("_bad.txt in S3 (%v):\n%s", err, bad)
	}
	m, err := search.ReadEmbedding(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Labels != "folders" || strings.Join(m.Classes, ",") != "a,b" || m.Unlabelled != 0 || m.Bad != 1 {
		t.Errorf("manifest: labels %q, classes %v, %d unlabelled, %d bad; want folders, [a b], 0, 1", m.Labels, m.Classes, m.Unlabelled, m.Bad)
	}
	for _, s := range m.Shards {
		sh, err := search.ReadShard(ctx, out, m, s)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range sh.Paths {
			if want := store.Base(store.Dir(p)); sh.Labels[i] != want {
				t.Errorf("%s: class %q, want %q", p, sh.Labels[i], want)
			}
		}
	}

	if testing.Short() {
		return
	}
	runner := filepath.Join(tmp, "runner")
	if b, err := exec.Command("go", "build", "-o", runner, "../runner").CombinedOutput(); err != nil {
		t.Fatalf("go build ./runner: %v\n%s", err, b)
	}
	rel, _ := filepath.Rel(folder, want.Paths[0])
	res, err := exec.Command(runner, "search", "--index", out, "--query", "gs://corpus/images/"+filepath.ToSlash(rel), "-k", "3").CombinedOutput()
	if err != nil {
		t.Fatalf("runner search --index %s: %v\n%s", out, err, res)
	}
	lines := strings.Split(strings.TrimSpace(string(res)), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "cosine 1.0000  gs://corpus/images/"+filepath.ToSlash(rel)) {
		t.Errorf("runner search --index %s --query %s: want the query itself first, at cosine 1.0000, then 2 more:\n%s", out, rel, res)
	}
}

// A labels file names images by their full path or their last elements;
// the longest match wins, and a file that contradicts itself is refused.
func TestClassesFromAFile(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "classes.csv")
	os.WriteFile(file, []byte("path,class\n0001.jpg,cat\ntrain/dog/0001.jpg,dog\ngs://b/x/0002.jpg,bird\n\"a,b.jpg\",comma\n"), 0o644)
	l, err := loadLabels(ctx, file, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"gs://b/train/dog/0001.jpg": "dog", "/data/train/cat/0001.jpg": "cat", "gs://b/x/0002.jpg": "bird",
		"gs://b/y/0002.jpg": "", "/d/a,b.jpg": "comma",
	} {
		if got := l.class(p); got != want {
			t.Errorf("%s: class %q, want %q", p, got, want)
		}
	}
	os.WriteFile(file, []byte("a.jpg,cat\na.jpg,dog\n"), 0o644)
	if _, err := loadLabels(ctx, file, 1<<20); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a file giving a.jpg two classes: %v", err)
	}
	os.WriteFile(file, []byte("a.jpg,cat,extra\n"), 0o644)
	if _, err := loadLabels(ctx, file, 1<<20); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("a line of three fields: %v", err)
	}
	if _, err := loadLabels(ctx, file, 4); err == nil || !strings.Contains(err.Error(), "more than 4") {
		t.Errorf("a file over its limit: %v", err)
	}
}
