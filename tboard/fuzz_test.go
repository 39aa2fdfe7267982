package tboard

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadEvents: no event file, however corrupt, panics the reader or makes
// it allocate more than the file holds.
func FuzzReadEvents(f *testing.F) {
	dir := f.TempDir()
	w, err := NewWriter(dir)
	if err != nil {
		f.Fatal(err)
	}
	w.Scalars(1, map[string]float64{"loss": 0.5})
	w.Image(1, "grid", []byte("\x89PNG"), 1, 1, 1)
	w.Close()
	paths, _ := filepath.Glob(filepath.Join(dir, "events.out.tfevents.*"))
	for _, p := range paths {
		raw, _ := os.ReadFile(p)
		f.Add(raw)
	}
	// A record header claiming 2^62 bytes, with a valid length CRC.
	var head [12]byte
	binary.LittleEndian.PutUint64(head[:], 1<<62)
	binary.LittleEndian.PutUint32(head[8:], MaskedCRC(head[:8]))
	f.Add(head[:])
	f.Fuzz(func(t *testing.T, b []byte) {
		readEvents(bytes.NewReader(b), int64(len(b)))
	})
}

// A record that claims more than the file holds is refused before its
// buffer is allocated.
func TestRecordLongerThanTheFile(t *testing.T) {
	var head [12]byte
	binary.LittleEndian.PutUint64(head[:], 1<<62)
	binary.LittleEndian.PutUint32(head[8:], MaskedCRC(head[:8]))
	p := filepath.Join(t.TempDir(), "events.out.tfevents.1")
	os.WriteFile(p, head[:], 0o644)
	if _, err := ReadEvents(p); err == nil || !bytes.Contains([]byte(err.Error()), []byte("claims 4611686018427387904 bytes")) {
		t.Errorf("record claiming 2^62 bytes: %v", err)
	}
}
