package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad: no config file, however malformed, panics Load; what it accepts
// has passed validation.
func FuzzLoad(f *testing.F) {
	shipped, _ := filepath.Glob("../configs/*.yaml")
	for _, p := range shipped {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte("train: {batch_size: 1}\n"))
	f.Add([]byte("a: &a [*a, *a, *a]\n"))
	f.Add([]byte("data: {max_file_mib: -1}\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if c, err := Load(p, nil); err == nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("Load accepted a config that does not validate: %v", err)
			}
		}
	})
}

func TestOversizedConfigFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "huge.yaml")
	os.WriteFile(p, []byte(strings.Repeat("# comment\n", MaxFileBytes/10+1)), 0o644)
	if _, err := Load(p, nil); err == nil || !strings.Contains(err.Error(), "huge.yaml") || !strings.Contains(err.Error(), "not a config file") {
		t.Errorf("a config file over %d bytes: %v", MaxFileBytes, err)
	}
}
