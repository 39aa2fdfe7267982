package store

import (
	"errors"
	"strings"
	"testing"
)

// A program that did not link the object stores in (package buckets) gets
// an error naming the URL and the import that fixes it, not a crash or
// Beam's bare "no filesystem registered".
func TestURLWithoutBucketsSaysWhatToImport(t *testing.T) {
	saved := notFound
	notFound = nil
	defer func() { notFound = saved }()
	_, err := ReadFile(t.Context(), "s3://bucket/key.npy", 10)
	if !errors.Is(err, ErrNoStores) || !strings.Contains(err.Error(), "s3://bucket/key.npy") || !strings.Contains(err.Error(), "infomax/buckets") {
		t.Fatalf("ReadFile of a URL without buckets: %v", err)
	}
	if err := WriteFile(t.Context(), "gs://bucket/x", []byte("x")); !errors.Is(err, ErrNoStores) {
		t.Fatalf("WriteFile of a URL without buckets: %v", err)
	}
}
