package data

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/infomax/infomax/internal/fsutil"
)

// The decoded cache: decoding 60,000 JPEGs takes seconds, reading their
// pixels back takes a fraction of one. A cache file holds both splits as
// loaded; its name is a hash of everything that shapes the result: the format
// version below, the options, and the source's fingerprint (for a file, its
// size, modification time and SHA-256; for a folder, each file's name, size
// and modification time).
const cacheVersion = "infomax-data-cache-1"

type cacheHeader struct {
	Version string     `json:"version"`
	Source  string     `json:"source"`
	Shape   [3]int     `json:"shape"`
	Train   int        `json:"train"`
	TestN   int        `json:"test"`
	Classes []string   `json:"classes"`
	Resized int        `json:"resized"`
	Bad     []badEntry `json:"bad,omitempty"`
}

type badEntry struct {
	Path, Err string
}

// CacheKey names a decoded copy of the source o reads, as loaded with o.
func CacheKey(o Options) (string, error) {
	h := sha256.New()
	abs, _ := filepath.Abs(o.Path)
	opts, _ := json.Marshal(struct {
		V string
		O Options
		A string
	}{cacheVersion, o, abs})
	h.Write(opts)
	if err := fingerprint(h, o.Path); err != nil {
		return "", fmt.Errorf("data cache: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

func fingerprint(w io.Writer, p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		fmt.Fprintf(w, "file %d %d\n", fi.Size(), fi.ModTime().UnixNano())
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f) // the content hash
		return err
	}
	var lines []string
	err = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(p, q)
		lines = append(lines, fmt.Sprintf("%s %d %d", rel, info.Size(), info.ModTime().UnixNano()))
		return nil
	})
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	return err
}

func cachePath(dir, key string) string { return filepath.Join(dir, key+".bin") }

// writeCache stores the splits: a JSON header, then train pixels and labels,
// then test pixels and labels (labels as little-endian int32).
func writeCache(dir, key string, s *Splits) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	hdr := cacheHeader{
		Version: cacheVersion, Source: s.Train.Source,
		Shape: [3]int{s.Train.H, s.Train.W, s.Train.C}, Train: s.Train.Len(), TestN: s.Test.Len(),
		Classes: s.Train.Classes, Resized: s.Resized,
	}
	for _, b := range s.Bad {
		hdr.Bad = append(hdr.Bad, badEntry{b.Path, b.Err.Error()})
	}
	head, err := json.Marshal(hdr)
	if err != nil {
		return "", err
	}
	size := 8 + len(head) + len(s.Train.Images) + len(s.Test.Images) + 4*(s.Train.Len()+s.Test.Len())
	buf := make([]byte, 0, size)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(head)))
	buf = append(buf, head...)
	for _, set := range []*Set{s.Train, s.Test} {
		buf = append(buf, set.Images...)
		for _, l := range set.Labels {
			buf = binary.LittleEndian.AppendUint32(buf, uint32(int32(l)))
		}
	}
	p := cachePath(dir, key)
	return p, fsutil.WriteFileAtomic(p, buf)
}

func readCache(dir, key string) (*Splits, error) {
	p := cachePath(dir, key)
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	bad := func(why string) (*Splits, error) { return nil, fmt.Errorf("%s: %s", p, why) }
	if len(raw) < 8 {
		return bad("too short")
	}
	n := binary.LittleEndian.Uint64(raw)
	if n > uint64(len(raw)-8) {
		return bad("header cut short")
	}
	var hdr cacheHeader
	if err := json.Unmarshal(raw[8:8+n], &hdr); err != nil || hdr.Version != cacheVersion {
		return bad("not a cache file of this version")
	}
	// Every count is checked against the bytes there before it is used.
	h, w, c := hdr.Shape[0], hdr.Shape[1], hdr.Shape[2]
	body := uint64(len(raw)) - 8 - n
	if h <= 0 || w <= 0 || c <= 0 || hdr.Train < 0 || hdr.TestN < 0 || uint64(h)*uint64(w) > body || uint64(h*w)*uint64(c) > body ||
		uint64(hdr.Train+hdr.TestN) > body || uint64(hdr.Train+hdr.TestN)*uint64(h*w*c+4) != body {
		return bad("size does not match its header")
	}
	per := h * w * c
	rest := raw[8+n:]
	take := func(count int) *Set {
		s := &Set{H: hdr.Shape[0], W: hdr.Shape[1], C: hdr.Shape[2], Classes: hdr.Classes, Source: hdr.Source}
		s.Images = rest[: count*per : count*per] // a view of the one buffer, no copy
		rest = rest[count*per:]
		s.Labels = make([]int, count)
		for i := range s.Labels {
			s.Labels[i] = int(int32(binary.LittleEndian.Uint32(rest[4*i:])))
		}
		rest = rest[4*count:]
		return s
	}
	out := &Splits{Train: take(hdr.Train), Test: take(hdr.TestN), Resized: hdr.Resized, Cached: p, FromCache: true}
	for _, b := range hdr.Bad {
		out.Bad = append(out.Bad, BadImage{Path: b.Path, Err: fmt.Errorf("%s", b.Err)})
	}
	return out, nil
}
