package run

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/infomax/infomax/checkpoint"
	"github.com/infomax/infomax/internal/fsutil"
	"github.com/infomax/infomax/internal/store"
)

// Local is dir itself when it is a local folder, and for a run folder in an
// object store (s3://bucket/prefix, gs://bucket/prefix) the local copy
// Fetch makes of it.
func Local(ctx context.Context, dir string) (string, error) {
	if !store.IsURL(dir) {
		return dir, nil
	}
	return Fetch(ctx, dir)
}

// fetchedMark is the file a whole cached copy of a run holds.
const fetchedMark = ".fetched"

// Fetch copies what reading a run folder in an object store needs (its
// config.yaml, model/, the latest checkpoint and latest.json, and
// metrics.jsonl if there is one) into a local cache folder, and returns
// that folder, read-only. The cache is keyed by the URL and the content of
// its latest.json: a second use of the same checkpoint downloads nothing
// but latest.json, and a newer checkpoint is a new copy. Each object's
// size is checked against the bytes that arrive; the copy appears whole
// (by rename) or not at all. The cache is $INFOMAX_CACHE/runs, else the
// user's cache folder's infomax/runs.
func Fetch(ctx context.Context, url string) (string, error) {
	url = strings.TrimSuffix(url, "/")
	latestURL := store.Join(url, CheckpointsDir, checkpoint.LatestFile)
	latest, err := store.ReadFile(ctx, latestURL, 1<<20)
	if err != nil {
		return "", fmt.Errorf("run %s: %w (a run folder has checkpoints/%s once its first checkpoint is written)", url, err, checkpoint.LatestFile)
	}
	var st checkpoint.State
	if err := json.Unmarshal(latest, &st); err != nil {
		return "", fmt.Errorf("%s: %w", latestURL, err)
	}
	if _, err := checkpoint.ParsePrefix(st.Prefix); err != nil {
		return "", fmt.Errorf("%s: %w", latestURL, err)
	}
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(url + "\x00" + string(latest)))
	dir := filepath.Join(root, hex.EncodeToString(sum[:10]))
	if _, err := os.Stat(filepath.Join(dir, fetchedMark)); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("run cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		return "", fmt.Errorf("run cache: %w", err)
	}
	defer os.RemoveAll(tmp) // a failed or beaten copy
	files, err := runObjects(ctx, url, CheckpointsDir+"/"+st.Prefix+".*")
	if err != nil {
		return "", fmt.Errorf("run %s: %w", url, err)
	}
	// A checkpoint uploaded by training has a manifest (sizes, CRC32C).
	ckpts := store.Join(url, CheckpointsDir)
	man, err := readSums(ctx, store.Join(ckpts, sumsName(st.Prefix)))
	switch {
	case err == nil:
		if err := man.check(ctx, ckpts); err != nil {
			return "", fmt.Errorf("run %s: %w", url, err)
		}
	case !errors.Is(err, store.ErrNotExist):
		return "", fmt.Errorf("run %s: %w", url, err)
	}
	if !strings.Contains(strings.Join(files, "\n"), CheckpointsDir+"/"+st.Prefix+".index") {
		return "", fmt.Errorf("%s points at checkpoint %s, and the bucket holds no %s/%s.index: an incomplete upload; the run's machine may still be writing it", latestURL, st.Prefix, CheckpointsDir, st.Prefix)
	}
	for _, f := range files {
		if err := download(ctx, store.Join(url, f), filepath.Join(tmp, filepath.FromSlash(f))); err != nil {
			return "", fmt.Errorf("run %s: %w", url, err)
		}
	}
	if man != nil {
		if err := man.checkLocal(ckpts, filepath.Join(tmp, CheckpointsDir)); err != nil {
			return "", fmt.Errorf("run %s: %w", url, err)
		}
	}
	// latest.json as read above: the copy is the checkpoint the key names.
	if err := os.WriteFile(filepath.Join(tmp, CheckpointsDir, checkpoint.LatestFile), latest, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, fetchedMark), []byte(url+"\n"), 0o644); err != nil {
		return "", err
	}
	readOnly(tmp)
	if err := os.Rename(tmp, dir); err != nil {
		if _, err2 := os.Stat(filepath.Join(dir, fetchedMark)); err2 == nil {
			return dir, nil // another process made the same copy first
		}
		return "", fmt.Errorf("run cache: %w", err)
	}
	return dir, nil
}

// runObjects are the objects of the run folder url that reading it
// needs, relative to url: config.yaml, model/, metrics.jsonl if there is
// one, and those the extra globs match (a glob's * does not cross a "/";
// a SavedModel nests two folders deep).
func runObjects(ctx context.Context, url string, extra ...string) ([]string, error) {
	files := []string{ConfigFile}
	globs := append([]string{ModelDir + "/*", ModelDir + "/*/*", ModelDir + "/*/*/*", MetricsFile}, extra...)
	for _, g := range globs {
		m, err := store.List(ctx, store.Join(url, g))
		if err != nil {
			return nil, err
		}
		for _, u := range m {
			files = append(files, strings.TrimPrefix(u, url+"/"))
		}
	}
	return files, nil
}

// download copies one object to a local file, checking that as many bytes
// arrive as the object's metadata says.
func download(ctx context.Context, url, path string) error {
	r, size, err := store.Open(ctx, url)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, size+1))
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	if n != size {
		return fmt.Errorf("%s: %d bytes arrived, its metadata says %d", url, n, size)
	}
	return nil
}

// readOnly takes the write permission off every file under dir (its
// folders stay writable, so that the cache can be cleared with rm -r).
func readOnly(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			os.Chmod(p, 0o444)
		}
		return nil
	})
}

// cacheRoot is where fetched runs are kept: $INFOMAX_CACHE/runs, else the
// user's cache folder's infomax/runs.
func cacheRoot() (string, error) {
	if d := os.Getenv("INFOMAX_CACHE"); d != "" {
		return filepath.Join(d, "runs"), nil
	}
	d, err := fsutil.UserCache("runs")
	if err != nil {
		return "", fmt.Errorf("run cache: %w (set INFOMAX_CACHE to a folder)", err)
	}
	return d, nil
}
