package data

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/schollz/progressbar/v3"

	"github.com/infomax/infomax/internal/fsutil"
)

// Remote is one file of an official release and its published checksum.
type Remote struct {
	File string
	URL  string
	MD5  string
}

// Releases are the official downloads by data set name. The MD5 sums are
// the ones the authors publish (CIFAR-10's download page, Fashion-MNIST's
// README); Tiny ImageNet's site publishes none, so its sum is the one that
// data-loading libraries check.
var Releases = map[string][]Remote{
	"cifar10": {
		{"cifar-10-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530"},
	},
	"fashion-mnist": {
		{"train-images-idx3-ubyte.gz", fashionBase + "train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"},
		{"train-labels-idx1-ubyte.gz", fashionBase + "train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"},
		{"t10k-images-idx3-ubyte.gz", fashionBase + "t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"},
		{"t10k-labels-idx1-ubyte.gz", fashionBase + "t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"},
	},
	"tiny-imagenet": {
		{"tiny-imagenet-200.zip", "http://cs231n.stanford.edu/tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de"},
	},
}

const fashionBase = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

// ReleaseNames lists the names Fetch knows, sorted.
func ReleaseNames() []string {
	var out []string
	for k := range Releases {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// FetchOptions set where a release goes and where it comes from.
type FetchOptions struct {
	Dir      string       // folder for the files (created)
	Mirror   string       // if set, files come from Mirror/<file> instead of the official address
	Client   *http.Client // nil: http.DefaultClient
	Progress io.Writer    // progress bars and messages; nil for none
}

// Fetch downloads a release's files into o.Dir. A file already there with
// the right checksum is kept; a partial download (<file>.part) is resumed
// with an HTTP range request; a file is renamed into place only once it is
// whole and its MD5 matches. It returns the files' paths.
func Fetch(ctx context.Context, name string, o FetchOptions) ([]string, error) {
	files, ok := Releases[name]
	if !ok {
		return nil, fmt.Errorf("fetch: unknown data set %q (known: %s)", name, strings.Join(ReleaseNames(), ", "))
	}
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for _, r := range files {
		url := r.URL
		if o.Mirror != "" {
			url = strings.TrimSuffix(o.Mirror, "/") + "/" + r.File
		}
		p := filepath.Join(o.Dir, r.File)
		if err := fetchOne(ctx, o, url, p, r.MD5); err != nil {
			return paths, fmt.Errorf("fetch %s: %w", url, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func fileMD5(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fetchOne(ctx context.Context, o FetchOptions, url, final, want string) error {
	if _, err := os.Stat(final); err == nil {
		got, err := fileMD5(final)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s exists but its MD5 is %s, want %s: remove it and fetch again", final, got, want)
		}
		fmt.Fprintf(o.Progress, "fetch: %s is already here (MD5 ok)\n", final)
		return nil
	}
	part := final + ".part"
	var offset int64
	if fi, err := os.Stat(part); err == nil {
		offset = fi.Size()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err := o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("%w (a partial download stays in %s; run the command again to resume)", err, part)
	}
	defer resp.Body.Close()
	flags := os.O_CREATE | os.O_WRONLY
	total := resp.ContentLength
	switch {
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		var start int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-", &start); err != nil || start != offset {
			return fmt.Errorf("server answered range %d- with %q", offset, resp.Header.Get("Content-Range"))
		}
		flags |= os.O_APPEND
		fmt.Fprintf(o.Progress, "fetch: resuming %s at byte %d\n", filepath.Base(final), offset)
		if total >= 0 {
			total += offset
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0:
		// The part may already be whole: check it below.
		resp.Body.Close()
		return finish(o, part, final, want)
	case resp.StatusCode == http.StatusOK:
		flags |= os.O_TRUNC // no range support, or a fresh start
		offset = 0
	default:
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	f, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return err
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(o.Progress), progressbar.OptionShowBytes(true),
		progressbar.OptionSetDescription(filepath.Base(final)), progressbar.OptionOnCompletion(func() { fmt.Fprintln(o.Progress) }))
	bar.Add64(offset)
	n, copyErr := io.Copy(io.MultiWriter(f, bar), resp.Body)
	if err := f.Sync(); err != nil && copyErr == nil {
		copyErr = err
	}
	if err := f.Close(); err != nil && copyErr == nil {
		copyErr = err
	}
	got := offset + n
	if copyErr == nil && total >= 0 && got < total {
		copyErr = io.ErrUnexpectedEOF
	}
	if copyErr != nil {
		return fmt.Errorf("cut short at %d of %d bytes: %w (kept in %s; run the command again to resume)", got, total, copyErr, part)
	}
	return finish(o, part, final, want)
}

// finish checks a whole download's MD5 and renames it into place.
func finish(o FetchOptions, part, final, want string) error {
	got, err := fileMD5(part)
	if err != nil {
		return err
	}
	if got != want {
		os.Remove(part)
		return fmt.Errorf("%s: MD5 %s, want %s: the download is corrupt and was removed; run the command again", filepath.Base(final), got, want)
	}
	if err := os.Rename(part, final); err != nil {
		return err
	}
	if err := fsutil.SyncDir(filepath.Dir(final)); err != nil {
		return err
	}
	fmt.Fprintf(o.Progress, "fetch: %s (MD5 ok)\n", final)
	return nil
}
