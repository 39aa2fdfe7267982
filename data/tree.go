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

// openTree opens a folder or an archive by its name and, failing that, its first bytes.
func openTree(p string) (*tree, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return openDir(p)
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
		return openZip(p)
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return openTar(p, true)
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return openTar(p, false)
	}
	return nil, fmt.Errorf("%s: not a folder nor a .tar, .tar.gz or .zip archive", p)
}

func openDir(root string) (*tree, error) {
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
	t.read = func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(root, filepath.FromSlash(name))) }
	t.index()
	return t, nil
}

func openTar(p string, gz bool) (*tree, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<20)
	if gz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		r = zr
	}
	tr := tar.NewReader(r)
	contents := map[string][]byte{}
	t := &tree{src: p, isDir: map[string]bool{}}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading the archive: %w (truncated or not a tar archive)", p, err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if h.Typeflag == tar.TypeDir && name != "." {
			t.isDir[name] = true
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: reading %s: %w (truncated archive)", p, name, err)
		}
		contents[name] = b
		t.files = append(t.files, name)
	}
	t.read = func(name string) ([]byte, error) {
		b, ok := contents[name]
		if !ok {
			return nil, fmt.Errorf("%s: no member %s", p, name)
		}
		return b, nil
	}
	t.index()
	return t, nil
}

func openZip(p string) (*tree, error) {
	zr, err := zip.OpenReader(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	// The reader stays open for the life of the process: a loaded data set
	// reads its members lazily, from several goroutines.
	byName := map[string]*zip.File{}
	t := &tree{src: p, isDir: map[string]bool{}}
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			t.isDir[path.Clean(f.Name)] = true
		}
		if f.FileInfo().Mode().IsRegular() {
			name := path.Clean(f.Name)
			byName[name] = f
			t.files = append(t.files, name)
		}
	}
	t.read = func(name string) ([]byte, error) {
		f, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("%s: no member %s", p, name)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	t.index()
	return t, nil
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
func readFileOrMember(p string) ([]byte, error) {
	if _, err := os.Stat(p); err == nil {
		return os.ReadFile(p)
	}
	for _, ext := range []string{".tar.gz:", ".tgz:", ".tar:", ".zip:"} {
		if i := strings.Index(p, ext); i > 0 {
			t, err := openTree(p[:i+len(ext)-1])
			if err != nil {
				return nil, err
			}
			return t.read(p[i+len(ext):])
		}
	}
	return os.ReadFile(p) // the error names the path
}
