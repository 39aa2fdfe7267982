// Package search is image search by image (the seed's 以图搜图): an index of
// encoder features with the files they came from, saved to disk, and k
// nearest-neighbour queries on it.
package search

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/infomax/infomax/eval"
	"github.com/infomax/infomax/internal/fsutil"
)

// Index holds one feature row per image.
type Index struct {
	Paths      []string      `json:"paths"`
	Features   eval.Features `json:"-"`
	Run        string        `json:"run"`         // the run whose encoder made the features
	ConfigHash string        `json:"config_hash"` // its manifest's spec hash
	Step       int64         `json:"step"`
}

// Hit is one search result.
type Hit struct {
	Path  string  `json:"path"`
	Index int     `json:"index"`
	Score float64 `json:"score"` // cosine similarity, or Euclidean distance for L2
}

const magic = "infomax-index-1\n"

// ErrEmpty means the index holds no images.
var ErrEmpty = errors.New("empty index")

// Save writes the index (a JSON header, then float32 rows), atomically.
func (ix *Index) Save(path string) error {
	if ix.Features.Len() != len(ix.Paths) {
		return fmt.Errorf("index: %d feature rows for %d paths", ix.Features.Len(), len(ix.Paths))
	}
	head, err := json.Marshal(struct {
		*Index
		Dim int `json:"dim"`
	}{ix, ix.Features.Dim})
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString(magic)
	binary.Write(&b, binary.LittleEndian, uint64(len(head)))
	b.Write(head)
	if len(ix.Features.Data) > 0 {
		b.Write(unsafe.Slice((*byte)(unsafe.Pointer(&ix.Features.Data[0])), 4*len(ix.Features.Data)))
	}
	return fsutil.WriteFileAtomic(path, b.Bytes())
}

// Load reads an index written by Save, or a sharded index folder written by
// the batch embedding pipeline (a folder with a manifest.json).
func Load(path string) (*Index, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return loadShards(path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ix, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ix, nil
}

// Parse reads the bytes of an index file. Every size in them is checked
// against the bytes actually there before anything is allocated from it.
func Parse(raw []byte) (*Index, error) {
	if !bytes.HasPrefix(raw, []byte(magic)) || len(raw) < len(magic)+8 {
		return nil, errors.New("not an infomax index (make one with `runner index`)")
	}
	raw = raw[len(magic):]
	n := binary.LittleEndian.Uint64(raw)
	raw = raw[8:]
	if n > uint64(len(raw)) {
		return nil, fmt.Errorf("the header claims %d bytes, the file holds %d after it: truncated index header", n, len(raw))
	}
	var head struct {
		Index
		Dim int `json:"dim"`
	}
	if err := json.Unmarshal(raw[:n], &head); err != nil {
		return nil, fmt.Errorf("index header: %w", err)
	}
	rows := raw[n:]
	paths := uint64(len(head.Paths))
	switch {
	case head.Dim < 0 || (head.Dim == 0 && paths > 0):
		return nil, fmt.Errorf("index header: feature dimension %d for %d paths: corrupt", head.Dim, paths)
	case paths == 0 && len(rows) > 0:
		return nil, fmt.Errorf("%d bytes of features for no paths: corrupt", len(rows))
	case paths > 0 && (uint64(len(rows))%(4*paths) != 0 || uint64(len(rows))/(4*paths) != uint64(head.Dim)):
		return nil, fmt.Errorf("%d bytes of features for %d paths of dimension %d: truncated or corrupt", len(rows), paths, head.Dim)
	}
	ix := head.Index
	ix.Features = eval.Features{Dim: head.Dim, Data: make([]float32, len(rows)/4)}
	if len(rows) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&ix.Features.Data[0])), len(rows)), rows)
	}
	return &ix, nil
}

// Search returns the k nearest images to each query row, best first.
func (ix *Index) Search(queries eval.Features, k int, metric eval.Metric) ([][]Hit, error) {
	if len(ix.Paths) == 0 {
		return nil, ErrEmpty
	}
	if queries.Dim != ix.Features.Dim {
		return nil, fmt.Errorf("search: queries of dimension %d, the index has %d", queries.Dim, ix.Features.Dim)
	}
	k = min(k, len(ix.Paths))
	nb, err := eval.SearchMetric(ix.Features, queries, k, eval.ChunkFor(ix.Features.Len()), metric)
	if err != nil {
		return nil, err
	}
	out := make([][]Hit, queries.Len())
	for q := range out {
		for j := 0; j < k; j++ {
			i := int(nb.Index[q*k+j])
			score := float64(nb.Sim[q*k+j])
			if metric == eval.L2 {
				score = -score
			}
			out[q] = append(out[q], Hit{Path: ix.Paths[i], Index: i, Score: score})
		}
	}
	return out, nil
}
