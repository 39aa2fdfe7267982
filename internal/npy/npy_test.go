package npy

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/testkit/testmodel"
)

// The .npy files load in NumPy unchanged: read back by the project's Python.
func TestNPYReadsBackInNumPy(t *testing.T) {
	py := testmodel.Python(t)
	dir := t.TempDir()
	f := []float32{1.5, -2, 0.25, 3, 4, 5}
	if err := Write(filepath.Join(dir, "f.npy"), f, 2, 3); err != nil {
		t.Fatal(err)
	}
	if err := Write(filepath.Join(dir, "l.npy"), []int32{7, -1, 3}, 3); err != nil {
		t.Fatal(err)
	}
	script := `import numpy as np, sys
f = np.load(sys.argv[1] + "/f.npy"); l = np.load(sys.argv[1] + "/l.npy")
print(f.dtype, f.shape, f.tolist(), l.dtype, l.shape, l.tolist())`
	out, err := exec.Command(py, "-c", script, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "float32 (2, 3) [[1.5, -2.0, 0.25], [3.0, 4.0, 5.0]] int32 (3,) [7, -1, 3]"
	if strings.TrimSpace(string(out)) != want {
		t.Errorf("numpy read %q, want %q", out, want)
	}
	if err := Write(filepath.Join(dir, "bad.npy"), f, 4, 2); err == nil {
		t.Error("a shape that does not hold the data was accepted")
	}
}

// What Write writes, ReadFloat32Rows reads back; a file whose header claims
// more rows than it holds is refused before anything is allocated.
func TestReadFloat32RowsReadsWhatWriteWrote(t *testing.T) {
	dir := t.TempDir()
	f := []float32{1.5, -2, 0.25, 3, 4, 5}
	p := filepath.Join(dir, "f.npy")
	if err := Write(p, f, 2, 3); err != nil {
		t.Fatal(err)
	}
	got, n, err := ReadFloat32Rows(p, 3)
	if err != nil || n != 2 || len(got) != 6 || got[2] != 0.25 || got[5] != 5 {
		t.Fatalf("read %v, %d rows, %v", got, n, err)
	}
	if _, _, err := ReadFloat32Rows(p, 2); err == nil || !strings.Contains(err.Error(), "want dimension 2") {
		t.Errorf("dimension 2 for a (2, 3) array: %v", err)
	}
}
