package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSaver writes the two files TensorFlow's saver writes, or fails.
type fakeSaver struct{ fail bool }

func (f fakeSaver) Save(prefix string) error {
	if err := os.WriteFile(prefix+".data-00000-of-00001", []byte("data"), 0o644); err != nil {
		return err
	}
	if f.fail {
		return errors.New("disk full")
	}
	return os.WriteFile(prefix+".index", []byte("index"), 0o644)
}

func TestSaveKeepsLatestAndPrunes(t *testing.T) {
	d := Dir{Path: t.TempDir(), Keep: 2}
	if _, err := d.Latest(); !errors.Is(err, ErrNone) {
		t.Fatalf("empty folder: %v", err)
	}
	for _, step := range []int64{10, 20, 30} {
		if _, err := d.Save(fakeSaver{}, State{Step: step, ConfigHash: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := d.Latest()
	if err != nil || st.Step != 30 || st.Prefix != "ckpt-000030" || strings.Join(st.Kept, ",") != "ckpt-000020,ckpt-000030" {
		t.Fatalf("latest %+v, %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(d.Path, "ckpt-000010.index")); !os.IsNotExist(err) {
		t.Errorf("oldest checkpoint not pruned: %v", err)
	}

	// A save that fails half-way leaves latest.json on the last complete one;
	// the next save removes the leftover.
	if _, err := d.Save(fakeSaver{fail: true}, State{Step: 40}); err == nil {
		t.Fatal("failed save reported success")
	}
	if st, _ := d.Latest(); st.Step != 30 {
		t.Fatalf("after a failed save, latest is step %d, want 30", st.Step)
	}
	if _, err := d.Save(fakeSaver{}, State{Step: 50}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.Path, "ckpt-000040.data-00000-of-00001")); !os.IsNotExist(err) {
		t.Errorf("half-written checkpoint left behind: %v", err)
	}
}

func TestLatestRefusesMissingCheckpoint(t *testing.T) {
	d := Dir{Path: t.TempDir(), Keep: 1}
	if _, err := d.Save(fakeSaver{}, State{Step: 5}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(d.Path, "ckpt-000005.index"))
	if _, err := d.Latest(); err == nil || !strings.Contains(err.Error(), "ckpt-000005") {
		t.Errorf("latest.json naming a missing checkpoint: %v", err)
	}
}
