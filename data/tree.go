package data

import (
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
}

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
func openTree(p string, lim Limits) (*tree, error) {
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
// memory. Member sizes come from their headers before any byte is read: a
// member over lim.MaxFileBytes is not kept (reading it is an error, so an
// image there is a bad image; other files are never read), and members that
// add up to more than lim's inflation bound of size refuse the archive, a
// likely decompression bomb (or a sparse-file bomb in a plain tar).
func readTar(r io.Reader, src string, size int64, gz bool, lim Limits) (*tree, error) {
	lim = lim.orDefaults()
	if gz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		r = zr
	}
	tr := tar.NewReader(r)
	contents := map[string][]byte{}
	tooLarge := map[string]int64{}
	t := &tree{src: src, isDir: map[string]bool{}}
	var total int64
	limit := lim.inflated(size)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading the archive: %w (truncated or not a tar archive)", src, err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if h.Typeflag == tar.TypeDir && name != "." {
			t.isDir[name] = true
		}
		if h.Typeflag != tar.TypeReg || name == "." || name == ".." || strings.HasPrefix(name, "../") {
			continue
		}
		if h.Size < 0 || total+h.Size > limit || total+h.Size < total {
			return nil, fmt.Errorf("%s: its members add up to more than %d bytes (%g× its %d bytes, plus slack) at %s: refused as a likely decompression bomb; raise data.max_inflate_ratio if it is a real archive: %w",
				src, limit, lim.MaxInflation, size, name, ErrTooLarge)
		}
		total += h.Size
		if _, dup := contents[name]; !dup {
			t.files = append(t.files, name)
		}
		if h.Size > lim.MaxFileBytes {
			tooLarge[name] = h.Size
			delete(contents, name)
			continue
		}
		b, err := readAllLimited(tr, h.Size, src+":"+name)
		if err != nil {
			return nil, fmt.Errorf("%s: reading %s: %w (truncated archive)", src, name, err)
		}
		if int64(len(b)) != h.Size {
			return nil, fmt.Errorf("%s: reading %s: %d of %d bytes: truncated archive", src, name, len(b), h.Size)
		}
		contents[name] = b
		delete(tooLarge, name)
	}
	t.read = func(name string) ([]byte, error) {
		if n, ok := tooLarge[name]; ok {
			return nil, fmt.Errorf("%d bytes, over the limit of %d (data.max_file_mib): %w", n, lim.MaxFileBytes, ErrTooLarge)
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

// readFileOrMember reads a file, or a member of an archive written as
// archive:member (as tree.where names it).
func readFileOrMember(p string, lim Limits) ([]byte, error) {
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
