package data_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/data"
)

func TestFashionMNISTOfficialFiles(t *testing.T) {
	s, err := data.LoadFashionMNIST(config.Defaults().Data.Path)
	if err != nil {
		t.Fatalf("run `make setup` to install Fashion-MNIST: %v", err)
	}
	if s.Train.Len() != 60000 || s.Test.Len() != 10000 || s.Train.H != 28 || s.Train.W != 28 || s.Train.C != 1 {
		t.Fatalf("train %d, test %d, %dx%dx%d", s.Train.Len(), s.Test.Len(), s.Train.H, s.Train.W, s.Train.C)
	}
	if len(s.Train.Images) != 60000*784 {
		t.Errorf("train pixels %d bytes", len(s.Train.Images))
	}
	count := make([]int, 10)
	for _, l := range s.Train.Labels {
		count[l]++
	}
	for c, n := range count {
		if n != 6000 {
			t.Errorf("class %d (%s): %d training images, want 6000", c, s.Train.Classes[c], n)
		}
	}
}

func TestIDXReadsPlainAndGzip(t *testing.T) {
	dir := t.TempDir()
	px := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	mustWriteIDX(t, filepath.Join(dir, "img"), 0x803, []int{2, 2, 2}, px)
	mustWriteIDX(t, filepath.Join(dir, "lab.gz"), 0x801, []int{2}, []byte{3, 9})
	s, err := data.ReadIDXPair(filepath.Join(dir, "img"), filepath.Join(dir, "lab.gz"), 10, data.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 || string(s.Image(1)) != string(px[4:]) || s.Labels[1] != 9 {
		t.Errorf("read %+v", s)
	}
}

func TestIDXErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	mustWriteIDX(t, p("images.gz"), 0x803, []int{2, 2, 2}, make([]byte, 8))
	mustWriteIDX(t, p("labels.gz"), 0x801, []int{2}, []byte{0, 1})
	mustWriteIDX(t, p("swapped.gz"), 0x801, []int{8}, make([]byte, 8))
	mustWriteIDX(t, p("short"), 0x803, []int{2, 2, 2}, make([]byte, 5))
	mustWriteIDX(t, p("long"), 0x803, []int{2, 2, 2}, make([]byte, 9))
	mustWriteIDX(t, p("badlabel"), 0x801, []int{2}, []byte{0, 10})
	mustWriteIDX(t, p("three"), 0x801, []int{3}, []byte{0, 1, 2})
	whole, _ := os.ReadFile(p("images.gz"))
	os.WriteFile(p("cut.gz"), whole[:len(whole)-6], 0o644) // the gzip trailer cut
	os.WriteFile(p("half.gz"), whole[:len(whole)/2], 0o644)

	cases := []struct{ images, labels, file, want string }{
		{"swapped.gz", "labels.gz", "swapped.gz", "magic number 0x00000801, want 0x00000803"},
		{"short", "labels.gz", "short", "promises [2 2 2] = 8 bytes, the file ends after 5: truncated"},
		{"long", "labels.gz", "long", "1 bytes after"},
		{"images.gz", "badlabel", "badlabel", "label 10 of image 1 is out of range"},
		{"images.gz", "three", "three", "has 3 labels but"},
		{"cut.gz", "labels.gz", "cut.gz", "unexpected EOF (truncated or corrupt)"},
		{"half.gz", "labels.gz", "half.gz", "truncated"},
		{"missing.gz", "labels.gz", "missing.gz", "no such file"},
	}
	for _, c := range cases {
		_, err := data.ReadIDXPair(p(c.images), p(c.labels), 10, data.Limits{})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.file) {
			t.Errorf("%s + %s: error %v, want it to name %s and say %q", c.images, c.labels, err, c.file, c.want)
		}
	}
}

func mustWriteIDX(t *testing.T, path string, magic uint32, dims []int, payload []byte) {
	t.Helper()
	if err := data.WriteIDX(path, magic, dims, payload); err != nil {
		t.Fatal(err)
	}
}
