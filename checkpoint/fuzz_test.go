package checkpoint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLatest: no latest.json, however corrupt, panics Latest, and what it
// accepts names a checkpoint inside its folder.
func FuzzLatest(f *testing.F) {
	f.Add([]byte(`{"prefix":"ckpt-000010","step":10,"epoch":0,"epoch_step":10,"config_hash":"abc","kept":["ckpt-000010"]}`))
	f.Add([]byte(`{"prefix":"../../etc/passwd"}`))
	f.Add([]byte(`{"prefix":""}`))
	dir := f.TempDir()
	os.WriteFile(filepath.Join(dir, "ckpt-000010.index"), nil, 0o644)
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, LatestFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if s, err := (Dir{Path: dir}).Latest(); err == nil && filepath.Dir(filepath.Join(dir, s.Prefix)) != dir {
			t.Fatalf("latest.json names %q, outside %s", s.Prefix, dir)
		}
	})
}

func TestLatestRefusesOversizedAndEscapingPointers(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) { os.WriteFile(filepath.Join(dir, LatestFile), []byte(s), 0o644) }
	write(`{"prefix":"` + strings.Repeat("x", maxLatestBytes) + `"}`)
	if _, err := (Dir{Path: dir}).Latest(); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("latest.json over %d bytes: %v", maxLatestBytes, err)
	}
	write(`{"prefix":"../elsewhere/ckpt-000001"}`)
	if _, err := (Dir{Path: dir}).Latest(); err == nil || !strings.Contains(err.Error(), "names no checkpoint of this folder") {
		t.Errorf("latest.json naming a prefix outside its folder: %v", err)
	}
}
