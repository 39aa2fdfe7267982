package data

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fixtureServer serves body at /good.bin with range support, a corrupted copy
// at /corrupt.bin, and at /short.bin the first half only (it announces the
// full length, then hangs up) until cutShort is cleared.
func fixtureServer(t *testing.T, body []byte) (*httptest.Server, *atomic.Bool, *[]string) {
	var cutShort atomic.Bool
	cutShort.Store(true)
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ranges = append(ranges, r.Header.Get("Range"))
		switch r.URL.Path {
		case "/good.bin":
			http.ServeContent(w, r, "good.bin", time.Time{}, bytes.NewReader(body))
		case "/corrupt.bin":
			bad := bytes.Clone(body)
			bad[len(bad)/2] ^= 0xff
			http.ServeContent(w, r, "corrupt.bin", time.Time{}, bytes.NewReader(bad))
		case "/short.bin":
			if !cutShort.Load() {
				http.ServeContent(w, r, "short.bin", time.Time{}, bytes.NewReader(body))
				return
			}
			w.Header().Set("Content-Length", "100000")
			w.WriteHeader(http.StatusOK)
			w.Write(body[:len(body)/2])
			// Returning with fewer bytes than announced ends the connection.
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &cutShort, &ranges
}

func withRelease(t *testing.T, name string, files ...Remote) {
	Releases[name] = files
	t.Cleanup(func() { delete(Releases, name) })
}

func TestFetch(t *testing.T) {
	body := make([]byte, 100000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	sum := md5.Sum(body)
	want := hex.EncodeToString(sum[:])
	srv, cutShort, ranges := fixtureServer(t, body)
	ctx := context.Background()
	dir := t.TempDir()

	t.Run("whole", func(t *testing.T) {
		withRelease(t, "fixture", Remote{"good.bin", srv.URL + "/good.bin", want})
		paths, err := Fetch(ctx, "fixture", FetchOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(paths[0])
		if !bytes.Equal(got, body) {
			t.Fatal("downloaded bytes differ")
		}
		// A second fetch keeps the file and downloads nothing.
		n := len(*ranges)
		if _, err := Fetch(ctx, "fixture", FetchOptions{Dir: dir}); err != nil || len(*ranges) != n {
			t.Errorf("second fetch: %v, %d requests", err, len(*ranges)-n)
		}
	})

	t.Run("corrupt", func(t *testing.T) {
		withRelease(t, "fixture", Remote{"corrupt.bin", srv.URL + "/corrupt.bin", want})
		_, err := Fetch(ctx, "fixture", FetchOptions{Dir: dir})
		if err == nil || !strings.Contains(err.Error(), "corrupt.bin: MD5") || !strings.Contains(err.Error(), "want "+want) {
			t.Fatalf("corrupt download: %v", err)
		}
		for _, p := range []string{"corrupt.bin", "corrupt.bin.part"} {
			if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
				t.Errorf("%s left behind after a checksum mismatch", p)
			}
		}
	})

	t.Run("cut short, then resumed", func(t *testing.T) {
		withRelease(t, "fixture", Remote{"short.bin", srv.URL + "/short.bin", want})
		_, err := Fetch(ctx, "fixture", FetchOptions{Dir: dir})
		if err == nil || !strings.Contains(err.Error(), "cut short at 50000 of 100000 bytes") || !strings.Contains(err.Error(), "run the command again to resume") {
			t.Fatalf("cut-short download: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "short.bin")); !os.IsNotExist(err) {
			t.Fatal("an incomplete file was renamed into place")
		}
		part, _ := os.ReadFile(filepath.Join(dir, "short.bin.part"))
		if len(part) != 50000 {
			t.Fatalf("partial file has %d bytes, want 50000", len(part))
		}
		cutShort.Store(false)
		*ranges = nil
		paths, err := Fetch(ctx, "fixture", FetchOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if len(*ranges) != 1 || (*ranges)[0] != "bytes=50000-" {
			t.Errorf("resume sent ranges %q, want one request for bytes=50000-", *ranges)
		}
		got, _ := os.ReadFile(paths[0])
		if !bytes.Equal(got, body) {
			t.Error("resumed file differs from the original")
		}
	})

	t.Run("mirror and unknown names", func(t *testing.T) {
		withRelease(t, "fixture", Remote{"good.bin", "http://unreachable.invalid/good.bin", want})
		if _, err := Fetch(ctx, "fixture", FetchOptions{Dir: t.TempDir(), Mirror: srv.URL + "/"}); err != nil {
			t.Errorf("mirror: %v", err)
		}
		if _, err := Fetch(ctx, "imagenet", FetchOptions{Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "cifar10, fashion-mnist") {
			t.Errorf("unknown name: %v", err)
		}
	})
}
