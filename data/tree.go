package data

import (
	"context"

	"github.com/infomax/infomax/internal/store"

	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// tree is a read-only view of a folder or an archive (.tar, .tar.gz/.tgz,
// .zip): the regular files under it by slash-separated relative name.
type tree struct {
	src   string   // the folder or archive, for messages
	files []string // sorted
	read  func(name string) ([]byte, error)
	isDir map[string]bool // every folder, empty ones included
	// A tar archive listed for streaming (listTar) is read in one pass in
	// archive order: order is each file's member index there.
	order map[string]int
	gz    bool
	size  int64
	lim   Limits
}

// sequential reports whether t's images can only be read in archive order.
func (t *tree) sequential() bool { return t.order != nil }

// where names a member for messages: archive.tar.gz:dir/file or folder/dir/file.
func (t *tree) where(name string) string {
	if isDirPath(t.src) {
		return filepath.Join(t.src, filepath.FromSlash(name))
	}
	return t.src + ":" + name
}

func isDirPath(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func (t *tree) has(name string) bool {
	i := sort.SearchStrings(t.files, name)
	return i < len(t.files) && t.files[i] == name
}

// sub lists the files under dir (relative names kept whole).
func (t *tree) under(dir string) []string {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	if dir == "" || dir == "." {
		return t.files
	}
	i := sort.SearchStrings(t.files, prefix)
	j := i
	for j < len(t.files) && strings.HasPrefix(t.files[j], prefix) {
		j++
	}
	return t.files[i:j]
}

// children lists the immediate sub-folders of dir (empty ones too), sorted.
func (t *tree) children(dir string) []string {
	if dir == "" {
		dir = "."
	}
	var out []string
	for d := range t.isDir {
		if path.Dir(d) == dir {
			out = append(out, path.Base(d))
		}
	}
	sort.Strings(out)
	return out
}

// find returns the folder (relative, "" for the top) that holds marker,
// searching the top and then one level down (archives usually wrap their
// contents in one folder).
func (t *tree) find(marker string) (string, bool) {
	if t.has(marker) {
		return "", true
	}
	for _, c := range t.children("") {
		if t.has(c + "/" + marker) {
			return c, true
		}
	}
	return "", false
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// openTree opens a folder or an archive by its name and, failing that, its
// first bytes. Every file or member it reads is bounded by lim.
func openTree(p string, lim Limits) (*tree, error) { return openTreeAs(p, lim, false) }

// openStreamTree opens a folder or an archive as openTree does, except that
// a tar archive is only listed (listTar), to be read in order later.
func openStreamTree(p string, lim Limits) (*tree, error) { return openTreeAs(p, lim, true) }

func openTreeAs(p string, lim Limits, stream bool) (*tree, error) {
	lim = lim.orDefaults()
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return openDir(p, lim)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return openZip(p, lim)
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}), len(head) >= 262 && string(head[257:262]) == "ustar":
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		if stream {
			return listTar(bufio.NewReaderSize(f, 1<<20), p, fi.Size(), head[0] == 0x1f, lim)
		}
		return readTar(bufio.NewReaderSize(f, 1<<20), p, fi.Size(), head[0] == 0x1f, lim)
	}
	return nil, fmt.Errorf("%s: not a folder nor a .tar, .tar.gz or .zip archive", p)
}

func openDir(root string, lim Limits) (*tree, error) {
	t := &tree{src: root, isDir: map[string]bool{}}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type().IsRegular():
			t.files = append(t.files, filepath.ToSlash(rel))
		case d.IsDir() && rel != ".":
			t.isDir[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	t.read = func(name string) ([]byte, error) { return lim.readFile(filepath.Join(root, filepath.FromSlash(name))) }
	t.index()
	return t, nil
}

// readTar reads a tar archive (gzipped if gz) of size bytes on disk into
// memory, within lim as scanTar bounds it. A member over lim.MaxFileBytes is
// not kept (reading it is an error, so an image there is a bad image; other
// files are never read).
func readTar(r io.Reader, src string, size int64, gz bool, lim Limits) (*tree, error) {
	lim = lim.orDefaults()
	contents := map[string][]byte{}
	tooLarge := map[string]int64{}
	t := &tree{src: src, isDir: map[string]bool{}}
	err := scanTar(r, src, size, gz, lim, func(h *tar.Header, name string, body io.Reader) error {
		if h.Typeflag == tar.TypeDir {
			t.isDir[name] = true
			return nil
		}
		if _, dup := contents[name]; !dup && tooLarge[name] == 0 {
			t.files = append(t.files, name)
		}
		if h.Size > lim.MaxFileBytes {
			tooLarge[name] = h.Size
			delete(contents, name)
			return nil
		}
		b, err := readMember(body, h.Size, src, name)
		if err != nil {
			return err
		}
		contents[name] = b
		delete(tooLarge, name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	t.read = func(name string) ([]byte, error) {
		if n, ok := tooLarge[name]; ok {
			return nil, lim.tooLarge(n)
		}
		b, ok := contents[name]
		if !ok {
			return nil, errors.New("no such member in the archive")
		}
		return b, nil
	}
	t.index()
	return t, nil
}

// listTar lists a tar archive for streaming: names and archive order, and
// the contents of its small non-image files (the layouts' text files:
// wnids.txt, val_annotations.txt, …; up to lim.MaxFileBytes in all). Images
// are read later, in order, by scanItems.
func listTar(r io.Reader, src string, size int64, gz bool, lim Limits) (*tree, error) {
	lim = lim.orDefaults()
	kept := map[string][]byte{}
	var keptBytes int64
	t := &tree{src: src, isDir: map[string]bool{}, order: map[string]int{}, gz: gz, size: size, lim: lim}
	member := 0
	err := scanTar(r, src, size, gz, lim, func(h *tar.Header, name string, body io.Reader) error {
		if h.Typeflag == tar.TypeDir {
			t.isDir[name] = true
			return nil
		}
		if _, dup := t.order[name]; !dup {
			t.files = append(t.files, name)
		}
		t.order[name] = member
		member++
		delete(kept, name)
		if !isImage(name) && keptBytes+h.Size <= lim.MaxFileBytes {
			b, err := readMember(body, h.Size, src, name)
			if err != nil {
				return err
			}
			kept[name] = b
			keptBytes += h.Size
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	t.read = func(name string) ([]byte, error) {
		if b, ok := kept[name]; ok {
			return b, nil
		}
		if _, ok := t.order[name]; ok {
			return nil, errors.New("a streamed tar archive's images are read in archive order only")
		}
		return nil, errors.New("no such member in the archive")
	}
	t.index()
	return t, nil
}

// scanItems reads a listed tar archive again, in one pass, calling fn with
// the bytes of each member that byMember maps to an item k and need(k)
// wants (a member over lim.MaxFileBytes is a bad image: fn gets the reason).
// The archive must hold what it held when listed.
func (t *tree) scanItems(byMember map[int]int, need func(k int) bool, fn func(k int, raw []byte, err error) error) error {
	f, err := os.Open(t.src)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != t.size {
		return fmt.Errorf("%s: changed since it was listed (%d bytes then): start again", t.src, t.size)
	}
	lim := t.lim
	member, seen := 0, 0
	err = scanTar(bufio.NewReaderSize(f, 1<<20), t.src, t.size, t.gz, lim, func(h *tar.Header, name string, body io.Reader) error {
		if h.Typeflag == tar.TypeDir {
			return nil
		}
		m := member
		member++
		k, ok := byMember[m]
		if !ok {
			return nil
		}
		seen++
		if !need(k) {
			return nil
		}
		if h.Size > lim.MaxFileBytes {
			return fn(k, nil, lim.tooLarge(h.Size))
		}
		raw, err := readMember(body, h.Size, t.src, name)
		if err != nil {
			return err
		}
		return fn(k, raw, nil)
	})
	if err == nil && seen != len(byMember) {
		err = fmt.Errorf("%s: %d of its %d listed images found: it changed since it was listed; start again", t.src, seen, len(byMember))
	}
	return err
}

// scanTar reads a tar archive (gzipped if gz) of size bytes on disk in one
// pass, calling fn for each folder and regular file under a safe relative
// name, with a reader of its contents that fn may leave unread. Member sizes
// come from their headers before any byte is read: members that add up to
// more than lim's inflation bound of size refuse the archive, a likely
// decompression bomb (or a sparse-file bomb in a plain tar).
func scanTar(r io.Reader, src string, size int64, gz bool, lim Limits, fn func(h *tar.Header, name string, body io.Reader) error) error {
	lim = lim.orDefaults()
	if gz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		r = zr
	}
	tr := tar.NewReader(r)
	var total int64
	limit := lim.inflated(size)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: reading the archive: %w (truncated or not a tar archive)", src, err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if name == "." || name == ".." || strings.HasPrefix(name, "../") {
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
		case tar.TypeReg:
			if h.Size < 0 || total+h.Size > limit || total+h.Size < total {
				return fmt.Errorf("%s: its members add up to more than %d bytes (%g× its %d bytes, plus slack) at %s, a likely decompression bomb: %w (raise data.max_inflate_ratio if it is a real archive)",
					src, limit, lim.MaxInflation, size, name, ErrTooLarge)
			}
			total += h.Size
		default:
			continue
		}
		if err := fn(h, name, tr); err != nil {
			return err
		}
	}
}

// readMember reads a tar member's size bytes whole.
func readMember(body io.Reader, size int64, src, name string) ([]byte, error) {
	b, err := readAllLimited(body, size, src+":"+name)
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s: %w (truncated archive)", src, name, err)
	}
	if int64(len(b)) != size {
		return nil, fmt.Errorf("%s: reading %s: %d of %d bytes: truncated archive", src, name, len(b), size)
	}
	return b, nil
}

func openZip(p string, lim Limits) (*tree, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	zr, err := zip.NewReader(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	// The file stays open for the life of the process: a loaded data set
	// reads its members lazily, from several goroutines.
	return zipTree(zr, p, lim), nil
}

// zipTree lists a zip archive's members; each is read when asked for, within
// lim.MaxFileBytes and lim's inflation bound of its compressed size, whatever
// its header claims (a member that inflates further is refused, not read
// into memory).
func zipTree(zr *zip.Reader, src string, lim Limits) *tree {
	lim = lim.orDefaults()
	byName := map[string]*zip.File{}
	t := &tree{src: src, isDir: map[string]bool{}}
	for _, f := range zr.File {
		name := path.Clean(f.Name)
		if name == "." || name == ".." || strings.HasPrefix(name, "../") {
			continue
		}
		if f.FileInfo().IsDir() {
			t.isDir[name] = true
		}
		if f.FileInfo().Mode().IsRegular() {
			if _, dup := byName[name]; !dup {
				t.files = append(t.files, name)
			}
			byName[name] = f
		}
	}
	t.read = func(name string) ([]byte, error) {
		f, ok := byName[name]
		if !ok {
			return nil, errors.New("no such member in the archive")
		}
		max := min(lim.MaxFileBytes, lim.inflated(int64(min(f.CompressedSize64, 1<<50))))
		if f.UncompressedSize64 > uint64(max) {
			return nil, fmt.Errorf("inflates to %d bytes, over the limit of %d (data.max_file_mib, data.max_inflate_ratio): %w",
				f.UncompressedSize64, max, ErrTooLarge)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return readAllLimited(rc, max, "the member")
	}
	t.index()
	return t
}

func (t *tree) index() {
	sort.Strings(t.files)
	for _, f := range t.files {
		for d := path.Dir(f); d != "." && !t.isDir[d]; d = path.Dir(d) {
			t.isDir[d] = true
		}
	}
}

// ReadFile reads an image file, an object (s3://…, gs://…), or an archive
// member named archive.tar:member (.tar, .tar.gz, .tgz, .zip), whole, within
// lim's file size.
func ReadFile(ctx context.Context, p string, lim Limits) ([]byte, error) {
	if store.IsURL(p) {
		lim = lim.orDefaults()
		b, err := store.ReadFile(ctx, p, lim.MaxFileBytes)
		if errors.Is(err, store.ErrTooLarge) {
			return nil, fmt.Errorf("%w: %w (data.max_file_mib)", err, ErrTooLarge)
		}
		return b, err
	}
	if _, err := os.Stat(p); err == nil {
		return lim.readFile(p)
	}
	for _, ext := range []string{".tar.gz:", ".tgz:", ".tar:", ".zip:"} {
		if i := strings.Index(p, ext); i > 0 {
			t, err := openTree(p[:i+len(ext)-1], lim)
			if err != nil {
				return nil, err
			}
			b, err := t.read(p[i+len(ext):])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			return b, nil
		}
	}
	return os.ReadFile(p) // the error names the path
}
