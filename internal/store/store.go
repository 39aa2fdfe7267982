// Package store reads and writes files by local path or object-store URL.
//
// Package store reads and writes the files a user names, by a local path or
// by an object-storage URL (s3://bucket/key, gs://bucket/key), through Apache
// Beam's filesystem packages: the same client code the embedding pipeline
// uses inside Beam, so a URL means the same thing to every command.
//
// Credentials, endpoints and regions come from each store's standard
// sources: for S3 the AWS SDK's (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_REGION, AWS_ENDPOINT_URL_S3, ~/.aws/config and credentials); for GCS
// Google's application default credentials (GOOGLE_APPLICATION_CREDENTIALS,
// gcloud's login) and STORAGE_EMULATOR_HOST.
//
// Object stores are not linked in by this package: a program that reads or
// writes s3:// or gs:// paths imports package buckets for its side effect
// (the runner and embed commands do), so that a library user who reads only
// local files does not link the AWS and Google Cloud SDKs.
//
// Local paths keep their local behaviour: a write goes to a temporary file
// renamed when whole. An object written to a store appears whole too: S3
// and GCS make an upload visible only when it completes.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"

	"github.com/infomax/infomax/internal/fsutil"
)

// Schemes are the object stores a path may name.
var Schemes = []string{"s3", "gs"}

// IsURL says whether p names an object in a store (s3://…, gs://…) rather
// than a local file.
func IsURL(p string) bool {
	for _, s := range Schemes {
		if strings.HasPrefix(p, s+"://") {
			return true
		}
	}
	return false
}

// Join joins a folder (a local path or a URL) and names in it.
func Join(dir string, elem ...string) string {
	if !IsURL(dir) {
		return filepath.Join(append([]string{dir}, elem...)...)
	}
	scheme, rest, _ := strings.Cut(dir, "://")
	bucket, key, _ := strings.Cut(rest, "/")
	return scheme + "://" + bucket + "/" + strings.TrimPrefix(path.Join(append([]string{key}, elem...)...), "/")
}

// Base is the last element of a path or URL.
func Base(p string) string {
	if IsURL(p) {
		return path.Base(p)
	}
	return filepath.Base(p)
}

// Dir is the folder of a path or URL (a URL's bucket for a key without
// folders).
func Dir(p string) string {
	if !IsURL(p) {
		return filepath.Dir(p)
	}
	scheme, rest, _ := strings.Cut(p, "://")
	bucket, key, _ := strings.Cut(rest, "/")
	if dir := path.Dir(key); dir != "." && dir != "/" {
		return scheme + "://" + bucket + "/" + dir
	}
	return scheme + "://" + bucket
}

// notFound says whether a store's error means "no such object"; nil until
// package buckets links the stores in (Enable).
var notFound func(error) bool

// Enable is called by package buckets, which registers Beam's S3 and GCS
// filesystems: isNotFound recognises their "no such object" errors, and
// objectStat asks a store for an object's size and checksums.
func Enable(isNotFound func(error) bool, objectStat func(ctx context.Context, url string) (Object, error)) {
	notFound, stat = isNotFound, objectStat
}

// ErrNoStores is the error of a URL in a program that did not link the
// object stores in.
var ErrNoStores = errors.New(`this program has no object-store support linked in: import _ "github.com/infomax/infomax/buckets" (the runner and embed commands do)`)

// fs opens the Beam filesystem of a URL. The S3 one panics when the AWS
// configuration does not load; that becomes an error here.
func fs(ctx context.Context, url string) (f filesystem.Interface, err error) {
	if notFound == nil {
		return nil, fmt.Errorf("%s: %w", url, ErrNoStores)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %v", url, r)
		}
	}()
	f, err = filesystem.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return f, nil
}

// ErrNotExist is the error of a path or object that is not there.
var ErrNotExist = os.ErrNotExist

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// Open opens a file or object for reading and gives its size (from the
// object's metadata, before any byte is read), so that a caller checks it
// against its limits before allocating.
func Open(ctx context.Context, p string) (io.ReadCloser, int64, error) {
	if !IsURL(p) {
		f, err := os.Open(p)
		if err != nil {
			return nil, 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		if fi.IsDir() {
			f.Close()
			return nil, 0, fmt.Errorf("%s: a folder, not a file", p)
		}
		return f, fi.Size(), nil
	}
	f, err := fs(ctx, p)
	if err != nil {
		return nil, 0, err
	}
	size, err := f.Size(ctx, p)
	if err != nil {
		f.Close()
		return nil, 0, notExist(p, err)
	}
	r, err := f.OpenRead(ctx, p)
	if err != nil {
		f.Close()
		return nil, 0, notExist(p, err)
	}
	return readCloser{r, func() error { return errors.Join(r.Close(), f.Close()) }}, size, nil
}

// List lists the files or objects a glob pattern matches (in a store, *
// does not cross a "/"), sorted.
func List(ctx context.Context, glob string) ([]string, error) {
	if !IsURL(glob) {
		m, err := filepath.Glob(glob)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", glob, err)
		}
		files := m[:0]
		for _, p := range m {
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				files = append(files, p)
			}
		}
		return files, nil
	}
	f, err := fs(ctx, glob)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := f.List(ctx, glob)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", glob, err)
	}
	slices.Sort(m)
	return m, nil
}

// notExist marks a store's "no such object" as ErrNotExist (what package
// buckets recognises as one).
func notExist(p string, err error) error {
	if notFound != nil && notFound(err) {
		return fmt.Errorf("%s: %w (%v)", p, ErrNotExist, err)
	}
	return fmt.Errorf("%s: %w", p, err)
}

// ErrTooLarge is the error of a file or object larger than a caller allows.
var ErrTooLarge = errors.New("too large")

// ReadFile reads a file or object whole, refusing one of more than max
// bytes by its size before reading it, and reading no more than max bytes
// whatever the store then sends.
func ReadFile(ctx context.Context, p string, max int64) ([]byte, error) {
	r, size, err := Open(ctx, p)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if size > max {
		return nil, fmt.Errorf("%s: %d bytes, more than %d: %w", p, size, max, ErrTooLarge)
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: more than %d bytes: %w", p, max, ErrTooLarge)
	}
	return b, nil
}

// WriteFile writes b to a file (by temporary file and rename) or an object
// (one upload, visible when complete).
func WriteFile(ctx context.Context, p string, b []byte) error {
	return Write(ctx, p, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// Write writes what write writes to a file (by temporary file and rename)
// or an object (one upload, visible when complete). When write fails, the
// upload's context is cancelled before the writer closes, so that no
// object is made of part of the bytes.
func Write(ctx context.Context, p string, write func(io.Writer) error) error {
	if !IsURL(p) {
		// Like a store, where a key's folders need no making.
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return fsutil.WriteAtomic(p, write)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f, err := fs(ctx, p)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := f.OpenWrite(ctx, p)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if err := write(w); err != nil {
		cancel()
		w.Close()
		return fmt.Errorf("%s: %w", p, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// Remove removes a file or object.
func Remove(ctx context.Context, p string) error {
	if !IsURL(p) {
		return os.Remove(p)
	}
	f, err := fs(ctx, p)
	if err != nil {
		return err
	}
	defer f.Close()
	r, ok := f.(filesystem.Remover)
	if !ok {
		return fmt.Errorf("%s: its store cannot remove objects", p)
	}
	return r.Remove(ctx, p)
}

// Exists says whether a file or object is there.
func Exists(ctx context.Context, p string) (bool, error) {
	r, _, err := Open(ctx, p)
	if errors.Is(err, ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, r.Close()
}

// MkdirAll makes a local folder; a store has no folders to make.
func MkdirAll(p string) error {
	if IsURL(p) {
		return nil
	}
	return os.MkdirAll(p, 0o755)
}
