package search

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/infomax/infomax/eval"
)

// ManifestFile names the manifest of a sharded index: the folder the batch
// embedding pipeline (embed/) writes, with NAME.npy (float32 [n, dim]) and
// NAME.paths.txt for every shard.
const ManifestFile = "manifest.json"

// Manifest says which model made a sharded index's features and lists its
// shards.
type Manifest struct {
	Run        string   `json:"run"`
	ConfigHash string   `json:"config_hash"`
	Step       int64    `json:"step"`
	Dim        int      `json:"dim"`
	Images     int      `json:"images"`
	Bad        int      `json:"bad"` // images left out (listed in bad.txt)
	Shards     []string `json:"shards"`
	Inputs     []string `json:"inputs"`
}

// loadShards reads a sharded index folder into one Index, checking every
// shard against the manifest.
func loadShards(dir string) (*Index, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	if m.Dim <= 0 {
		return nil, fmt.Errorf("%s: feature dimension %d", filepath.Join(dir, ManifestFile), m.Dim)
	}
	ix := &Index{Run: m.Run, ConfigHash: m.ConfigHash, Step: m.Step, Features: eval.Features{Dim: m.Dim}}
	for _, s := range m.Shards {
		if s != filepath.Base(s) {
			return nil, fmt.Errorf("%s: shard %q is not a file of the folder", dir, s)
		}
		feats, n, err := readNPYFloat32(filepath.Join(dir, s+".npy"), m.Dim)
		if err != nil {
			return nil, err
		}
		names, err := os.ReadFile(filepath.Join(dir, s+".paths.txt"))
		if err != nil {
			return nil, err
		}
		paths := strings.Split(strings.TrimSuffix(string(names), "\n"), "\n")
		if n == 0 {
			paths = nil
		}
		if len(paths) != n {
			return nil, fmt.Errorf("%s: %d paths for %d feature rows", filepath.Join(dir, s+".paths.txt"), len(paths), n)
		}
		ix.Paths = append(ix.Paths, paths...)
		ix.Features.Data = append(ix.Features.Data, feats...)
	}
	if len(ix.Paths) != m.Images {
		return nil, fmt.Errorf("%s: the manifest says %d images, the shards hold %d", dir, m.Images, len(ix.Paths))
	}
	return ix, nil
}

var npyShape = regexp.MustCompile(`'shape': \((\d+), (\d+)\)`)

// readNPYFloat32 reads a little-endian float32 [n, dim] .npy file, checking
// its header against the file's size before allocating.
func readNPYFloat32(path string, dim int) ([]float32, int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	bad := func(why string) ([]float32, int, error) { return nil, 0, fmt.Errorf("%s: %s", path, why) }
	if len(raw) < 10 || !bytes.HasPrefix(raw, []byte("\x93NUMPY\x01\x00")) {
		return bad("not a version-1 .npy file")
	}
	hl := int(binary.LittleEndian.Uint16(raw[8:10]))
	if 10+hl > len(raw) {
		return bad("header cut short")
	}
	header := string(raw[10 : 10+hl])
	m := npyShape.FindStringSubmatch(header)
	if m == nil || !strings.Contains(header, "'descr': '<f4'") || !strings.Contains(header, "'fortran_order': False") {
		return bad("want a C-order float32 [n, dim] array")
	}
	n, err1 := strconv.Atoi(m[1])
	d, err2 := strconv.Atoi(m[2])
	body := raw[10+hl:]
	if err := errors.Join(err1, err2); err != nil || d != dim || n < 0 || len(body) != 4*n*d {
		return bad(fmt.Sprintf("shape (%s, %s) with %d bytes of data, want dimension %d", m[1], m[2], len(body), dim))
	}
	out := make([]float32, n*d)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
	}
	return out, n, nil
}
