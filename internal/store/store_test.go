package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/internal/store"
	"github.com/infomax/infomax/testkit/emulators"
)

func TestRoundTripThroughEmulators(t *testing.T) {
	emulators.Start(t, "bucket")
	ctx := context.Background()
	for _, base := range []string{"s3://bucket/a", "gs://bucket/a", t.TempDir()} {
		p := store.Join(base, "b", "c.bin")
		want := bytes.Repeat([]byte("infomax"), 1000)
		if err := store.WriteFile(ctx, p, want); err != nil {
			t.Fatalf("write %s: %v", p, err)
		}
		got, err := store.ReadFile(ctx, p, 1<<20)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read %s: %d bytes, %v", p, len(got), err)
		}
		if _, err := store.ReadFile(ctx, p, 100); !errors.Is(err, store.ErrTooLarge) {
			t.Errorf("read %s within 100 bytes: %v, want ErrTooLarge", p, err)
		}
		if _, err := store.ReadFile(ctx, store.Join(base, "missing"), 100); !errors.Is(err, store.ErrNotExist) {
			t.Errorf("read a missing object of %s: %v, want ErrNotExist", base, err)
		}
	}
}

func TestPathsAndURLs(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{store.Join("s3://b", "x", "y.npy"), "s3://b/x/y.npy"},
		{store.Join("gs://b/pre/", "y.npy"), "gs://b/pre/y.npy"},
		{store.Join("dir/sub", "y.npy"), "dir/sub/y.npy"},
		{store.Dir("gs://b/train/cat/1.jpg"), "gs://b/train/cat"},
		{store.Dir("s3://b/1.jpg"), "s3://b"},
		{store.Dir("/data/cat/1.jpg"), "/data/cat"},
		{store.Base(store.Dir("gs://b/train/cat/1.jpg")), "cat"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
	for p, want := range map[string]bool{"s3://b/k": true, "gs://b": true, "S3://b": false, "/s3://x": false, "file.txt": false} {
		if store.IsURL(p) != want {
			t.Errorf("IsURL(%q) = %v", p, !want)
		}
	}
}

// A write that fails part way leaves no object (and no file) behind.
func TestFailedWriteLeavesNothing(t *testing.T) {
	emulators.Start(t, "bucket")
	ctx := context.Background()
	for _, base := range []string{"s3://bucket", "gs://bucket", t.TempDir()} {
		p := store.Join(base, "half.bin")
		err := store.Write(ctx, p, func(w io.Writer) error {
			w.Write(bytes.Repeat([]byte("x"), 1<<20))
			return errors.New("disk gone")
		})
		if err == nil || !strings.Contains(err.Error(), "disk gone") {
			t.Errorf("%s: %v", p, err)
		}
		if there, err := store.Exists(ctx, p); there || err != nil {
			t.Errorf("%s: a failed write left it there (%v)", p, err)
		}
	}
}

// Verify compares an object with a local file by size and by the checksum
// the store reports: GCS's CRC32C, S3's ETag (the emulator gives the MD5
// of the bytes, in one part or in many).
func TestVerifyUploads(t *testing.T) {
	emulators.Start(t, "bucket")
	ctx := context.Background()
	dir := t.TempDir()
	for _, n := range []int{100, store.UploadPartSize + 12345} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7 / 3)
		}
		local := filepath.Join(dir, "f")
		if err := os.WriteFile(local, b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, url := range []string{"s3://bucket/v", "gs://bucket/v"} {
			if err := store.WriteFile(ctx, url, b); err != nil {
				t.Fatal(err)
			}
			if err := store.Verify(ctx, url, local); err != nil {
				t.Errorf("%d bytes: %v", n, err)
			}
			other := filepath.Join(dir, "other")
			b2 := bytes.Clone(b)
			b2[n/2] ^= 1
			os.WriteFile(other, b2, 0o644)
			if err := store.Verify(ctx, url, other); err == nil || !strings.Contains(err.Error(), url+": its") || !strings.Contains(err.Error(), "differs") {
				t.Errorf("%s against a file with one bit changed: %v", url, err)
			}
			os.WriteFile(other, b[:n-1], 0o644)
			if err := store.Verify(ctx, url, other); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d bytes in the store, %d in", n, n-1)) {
				t.Errorf("%s against a shorter file: %v", url, err)
			}
			if err := store.Verify(ctx, url+"-missing", local); !errors.Is(err, store.ErrNotExist) {
				t.Errorf("a missing object: %v", err)
			}
		}
	}
}
