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

// tempSaver fails as TensorFlow's saver does on a full disk: after writing
// part of the checkpoint into PREFIX_temp/.
type tempSaver struct{}

func (tempSaver) Save(prefix string) error {
	if err := os.MkdirAll(prefix+"_temp", 0o755); err != nil {
		return err
	}
	os.WriteFile(filepath.Join(prefix+"_temp", "part-00000-of-00001.data-00000-of-00001"), make([]byte, 1000), 0o644)
	return errors.New("part-00000-of-00001.data-00000-of-00001; No space left on device")
}

// A save that fails on a full disk removes what it wrote, and Clean removes
// the remains of a save that was killed (so no process removed them): the
// next start then has the space the failed save took.
func TestFailedSaveLeavesNothingBehind(t *testing.T) {
	d := Dir{Path: t.TempDir(), Keep: 2}
	if _, err := d.Save(fakeSaver{}, State{Step: 10, ConfigHash: "h"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Save(tempSaver{}, State{Step: 20, ConfigHash: "h"}); err == nil || !strings.Contains(err.Error(), "No space") {
		t.Fatalf("failed save: %v", err)
	}
	left := func() []string {
		entries, _ := os.ReadDir(d.Path)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	want := "ckpt-000010.data-00000-of-00001 ckpt-000010.index latest.json"
	if got := strings.Join(left(), " "); got != want {
		t.Errorf("after the failed save: %s, want %s", got, want)
	}

	// A killed save: its temp folder and a lone data file stay until Clean.
	os.MkdirAll(filepath.Join(d.Path, "ckpt-000030_temp"), 0o755)
	os.WriteFile(filepath.Join(d.Path, "ckpt-000030_temp", "part-0"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(d.Path, "ckpt-000030.data-00000-of-00001"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(d.Path, "ckpt-000010_temp"), 0o755) // a temp folder of the kept prefix
	if err := d.Clean(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(left(), " "); got != want {
		t.Errorf("after Clean: %s, want %s", got, want)
	}
	if st, err := d.Latest(); err != nil || st.Step != 10 {
		t.Errorf("latest after Clean: %+v, %v", st, err)
	}
	// An empty or missing folder is clean already.
	if err := (Dir{Path: filepath.Join(d.Path, "none")}).Clean(); err != nil {
		t.Errorf("missing folder: %v", err)
	}
}

func TestPrefixNames(t *testing.T) {
	if p := Prefix(500); p != "ckpt-000500" {
		t.Errorf("Prefix(500) = %s", p)
	}
	for _, c := range []struct {
		in   string
		step int64
		ok   bool
	}{{"ckpt-000500", 500, true}, {"ckpt-1234567", 1234567, true}, {"ckpt-500", 0, false}, {"ckpt-000500_temp", 0, false}, {"model", 0, false}} {
		step, err := ParsePrefix(c.in)
		if (err == nil) != c.ok || step != c.step {
			t.Errorf("ParsePrefix(%q) = %d, %v", c.in, step, err)
		}
	}
}
