package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/internal/memstat"
	"github.com/infomax/infomax/testkit/hostile"
	"github.com/infomax/infomax/testkit/testmodel"
)

// hostileFolder writes two classes of real Fashion-MNIST images as PNG files
// plus, in the first class, an image whose header claims 100,000 × 100,000
// pixels (45 bytes on disk, 40 GB if a decoder trusted it).
func hostileFolder(t *testing.T) string {
	t.Helper()
	fm := testmodel.FashionMNISTSet(t, 80)
	dir := t.TempDir()
	for i := 0; i < fm.Len(); i++ {
		g := &image.Gray{Pix: fm.Image(i), Stride: 28, Rect: image.Rect(0, 0, 28, 28)}
		var b bytes.Buffer
		png.Encode(&b, g)
		class := fmt.Sprintf("class%d", i%2)
		os.MkdirAll(filepath.Join(dir, class), 0o755)
		os.WriteFile(filepath.Join(dir, class, fmt.Sprintf("%03d.png", i)), b.Bytes(), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "class0", "huge.png"), hostile.PNG(100_000, 100_000), 0o644)
	return dir
}

// One image with a huge header, in a folder to train on, to index, or as a
// search query: a clear error naming it, or with --skip-bad a counted skip;
// never a crash, and no allocation of what the header claims.
func TestHostileImageEverywhere(t *testing.T) {
	folder := hostileFolder(t)
	huge := filepath.Join(folder, "class0", "huge.png")
	cfg := smallConfigWith(t, smallRun(t, ""), "data: {format: folder, path: "+folder+", test_fraction: 0.25, cache_dir: off}")
	check := func(what string, grew float64, err error, want ...string) {
		t.Helper()
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want it to say %q", what, err, w)
			}
		}
		if !errors.Is(err, data.ErrTooLarge) {
			t.Errorf("%s: %v is not data.ErrTooLarge", what, err)
		}
		if grew > 1024 {
			t.Errorf("%s: peak memory grew by %.0f MiB", what, grew)
		}
		t.Logf("%s: %v (peak +%.0f MiB)", what, err, grew)
	}

	var err error
	var out bytes.Buffer
	grew := memstat.PeakGrowth(func() {
		err = runTrain(context.Background(), trainOptions{ConfigFile: cfg, RunDir: filepath.Join(t.TempDir(), "strict"), MaxSteps: 2}, &out)
	})
	check("train on the folder", grew, err, huge, "100000×100000", "--skip-bad")

	out.Reset()
	run := filepath.Join(t.TempDir(), "skip")
	if err := runTrain(context.Background(), trainOptions{ConfigFile: cfg, RunDir: run, MaxSteps: 2, SkipBad: true}, &out); err != nil {
		t.Fatalf("train --skip-bad: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "1 images could not be decoded and were left out") || !strings.Contains(out.String(), "huge.png") {
		t.Errorf("train --skip-bad does not count and name the image it left out:\n%s", out.String())
	}

	idx := filepath.Join(t.TempDir(), "x.idx")
	grew = memstat.PeakGrowth(func() {
		err = runIndex(t.Context(), indexOptions{RunDir: run, Images: folder, Out: idx}, new(bytes.Buffer))
	})
	check("index", grew, err, huge, "--skip-bad")
	out.Reset()
	if err := runIndex(t.Context(), indexOptions{RunDir: run, Images: folder, Out: idx, SkipBad: true}, &out); err != nil {
		t.Fatalf("index --skip-bad: %v", err)
	}
	if !strings.Contains(out.String(), "index: 80 images") || !strings.Contains(out.String(), "1 left out") || !strings.Contains(out.String(), "huge.png") {
		t.Errorf("index --skip-bad output:\n%s", out.String())
	}
	grew = memstat.PeakGrowth(func() {
		err = runSearch(t.Context(), searchOptions{Index: idx, Query: huge, K: 3, Metric: "cosine"}, new(bytes.Buffer))
	})
	check("search --query", grew, err, huge)
}
