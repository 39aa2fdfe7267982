// Package search is image search by image: an index of features with their files.
//
// Package search is image search by image (the seed's 以图搜图): an index of
// encoder features with the files they came from, saved to disk, and k
// nearest-neighbour queries on it.
package search

import (
	"github.com/infomax/infomax/internal/store"

	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/infomax/infomax/internal/fsutil"
	"github.com/infomax/infomax/knn"
)

// Index holds one feature row per image. Make one with New (which checks
// that it is whole) or Load.
type Index struct {
	Paths      []string     `json:"paths"`
	Features   knn.Features `json:"-"`
	Run        string       `json:"run"`         // the run whose encoder made the features
	ConfigHash string       `json:"config_hash"` // its manifest's spec hash
	Step       int64        `json:"step"`
	// Precision is what the encoder computed the features in (float32 or
	// bfloat16; "": an index from before the key). Set it after New.
	Precision string `json:"precision,omitempty"`
	// Feature names which of the encoder's features the rows are
	// (FeatureZMean, the code, also when ""; or encoder's Conv, ConvAvg): a
	// query must be encoded the same way.
	Feature string `json:"feature,omitempty"`
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

// New makes an index of one feature row per path, refusing features that are
// not whole rows or whose rows do not match the paths one to one. run,
// configHash and step say which encoder made the features (Encoder's Run,
// ConfigHash and Step).
func New(paths []string, features knn.Features, run, configHash string, step int64) (*Index, error) {
	ix := &Index{Paths: paths, Features: features, Run: run, ConfigHash: configHash, Step: step}
	if err := ix.check(); err != nil {
		return nil, err
	}
	return ix, nil
}

// check says what breaks the index's invariant: one row per path.
func (ix *Index) check() error {
	if err := ix.Features.Check(); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	if n := ix.Features.Len(); n != len(ix.Paths) || (len(ix.Features.Data) > 0 && ix.Features.Dim == 0) {
		return fmt.Errorf("index: %d feature rows for %d paths", n, len(ix.Paths))
	}
	return nil
}

// Save writes the index (a JSON header, then float32 rows), atomically.
func (ix *Index) Save(path string) error {
	if err := ix.check(); err != nil {
		return err
	}
	head, err := json.Marshal(struct {
		*Index
		RunRelative string `json:"run_relative,omitempty"`
		Dim         int    `json:"dim"`
	}{ix, RelativeRun(path, ix.Run), ix.Features.Dim})
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

// Load reads an index written by Save or SaveParquet, or a sharded index folder written by
// the batch embedding pipeline (a folder with an embedding.json). Either may
// be in an object store (s3://bucket/key, gs://bucket/key; see
// internal/store for credentials and endpoints).
func Load(ctx context.Context, path string) (*Index, error) {
	if store.IsURL(path) {
		for _, name := range EmbeddingFiles {
			if there, err := store.Exists(ctx, store.Join(path, name)); err != nil {
				return nil, err
			} else if there {
				return loadShards(ctx, path)
			}
		}
	} else if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return loadShards(ctx, path)
	}
	raw, err := store.ReadFile(ctx, path, maxIndexBytes)
	if err != nil {
		return nil, err // store's errors name the path
	}
	parseAny := parse
	if isParquet(raw) {
		parseAny = func(raw []byte) (*Index, string, error) { return parseParquet(ctx, raw) }
	}
	ix, rel, err := parseAny(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ix.Run = RunFolder(path, ix.Run, rel)
	return ix, nil
}

// RelativeRun is run relative to the folder of the file at path ("" when
// either is not absolute-able or they share no root).
func RelativeRun(path, run string) string {
	if run == "" || store.IsURL(path) {
		return ""
	}
	absPath, err1 := filepath.Abs(path)
	absRun, err2 := filepath.Abs(run)
	if err1 != nil || err2 != nil {
		return ""
	}
	rel, err := filepath.Rel(filepath.Dir(absPath), absRun)
	if err != nil {
		return ""
	}
	return filepath.ToSlash(rel)
}

// RunFolder is where the run of a file at path is: relative to the file when
// rel leads to a run folder (one with a config.yaml), else abs as recorded.
func RunFolder(path, abs, rel string) string {
	if rel != "" && !store.IsURL(path) {
		if absPath, err := filepath.Abs(path); err == nil {
			p := filepath.Join(filepath.Dir(absPath), filepath.FromSlash(rel))
			if _, err := os.Stat(filepath.Join(p, "config.yaml")); err == nil {
				return p
			}
		}
	}
	return abs
}

// maxIndexBytes bounds an index file read whole (parse checks every size in
// it against the bytes there).
const maxIndexBytes = 1 << 40

// Parse reads the bytes of an index file. Every size in them is checked
// against the bytes actually there before anything is allocated from it.
func Parse(raw []byte) (*Index, error) {
	ix, _, err := parse(raw)
	return ix, err
}

func parse(raw []byte) (*Index, string, error) {
	if !bytes.HasPrefix(raw, []byte(magic)) || len(raw) < len(magic)+8 {
		return nil, "", errors.New("not an infomax index (make one with `runner index`)")
	}
	raw = raw[len(magic):]
	n := binary.LittleEndian.Uint64(raw)
	raw = raw[8:]
	if n > uint64(len(raw)) {
		return nil, "", fmt.Errorf("the header claims %d bytes, the file holds %d after it: truncated index header", n, len(raw))
	}
	var head struct {
		Index
		RunRelative string `json:"run_relative"`
		Dim         int    `json:"dim"`
	}
	if err := json.Unmarshal(raw[:n], &head); err != nil {
		return nil, "", fmt.Errorf("index header: %w", err)
	}
	rows := raw[n:]
	paths := uint64(len(head.Paths))
	switch {
	case head.Dim < 0 || (head.Dim == 0 && paths > 0):
		return nil, "", fmt.Errorf("index header: feature dimension %d for %d paths: corrupt", head.Dim, paths)
	case paths == 0 && len(rows) > 0:
		return nil, "", fmt.Errorf("%d bytes of features for no paths: corrupt", len(rows))
	case paths > 0 && (uint64(len(rows))%(4*paths) != 0 || uint64(len(rows))/(4*paths) != uint64(head.Dim)):
		return nil, "", fmt.Errorf("%d bytes of features for %d paths of dimension %d: truncated or corrupt", len(rows), paths, head.Dim)
	}
	ix := head.Index
	ix.Features = knn.Features{Dim: head.Dim, Data: make([]float32, len(rows)/4)}
	if len(rows) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&ix.Features.Data[0])), len(rows)), rows)
	}
	return &ix, head.RunRelative, nil
}

// Search returns the k nearest images to each query row, best first; a
// cancelled ctx stops it.
func (ix *Index) Search(ctx context.Context, queries knn.Features, k int, metric knn.Metric) ([][]Hit, error) {
	return ix.SearchWith(ctx, queries, k, knn.Options{Metric: metric})
}

// SearchWith is Search with the search's options: its metric, and the
// TensorFlow session's threads and device (an Encoder's Session()). It
// prepares the features for one search; a Searcher keeps them prepared
// for many.
func (ix *Index) SearchWith(ctx context.Context, queries knn.Features, k int, o knn.Options) ([][]Hit, error) {
	s, err := ix.Searcher(o)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Search(ctx, queries, k)
}

// Searcher is an index made ready for many searches: its features held by
// TensorFlow once, in blocks (knn.Bank), so that a search costs its
// queries' scoring and nothing else. Safe for concurrent use; Close frees
// it.
type Searcher struct {
	ix   *Index
	bank *knn.Bank
	o    knn.Options
}

// Searcher prepares the index for searches with o's metric and session.
func (ix *Index) Searcher(o knn.Options) (*Searcher, error) {
	if err := ix.check(); err != nil {
		return nil, err
	}
	if len(ix.Paths) == 0 {
		return nil, ErrEmpty
	}
	bank, err := knn.NewBank(ix.Features, o)
	if err != nil {
		return nil, fmt.Errorf("search an index of %d features: %w", ix.Features.Len(), err)
	}
	return &Searcher{ix: ix, bank: bank, o: o}, nil
}

// Close frees what the searcher holds.
func (s *Searcher) Close() error { return s.bank.Close() }

// Search returns the k nearest images to each query row, best first.
func (s *Searcher) Search(ctx context.Context, queries knn.Features, k int) ([][]Hit, error) {
	ix, o := s.ix, s.o
	if queries.Dim != ix.Features.Dim {
		return nil, fmt.Errorf("search: queries of dimension %d, the index has %d", queries.Dim, ix.Features.Dim)
	}
	k = min(k, len(ix.Paths))
	nb, err := s.bank.Search(ctx, queries, k)
	if err != nil {
		return nil, fmt.Errorf("search an index of %d features: %w", ix.Features.Len(), err)
	}
	out := make([][]Hit, queries.Len())
	for q := range out {
		for j := 0; j < k; j++ {
			i := int(nb.Index[q*k+j])
			score := float64(nb.Sim[q*k+j])
			if o.Metric == knn.L2 {
				score = -score
			}
			out[q] = append(out[q], Hit{Path: ix.Paths[i], Index: i, Score: score})
		}
	}
	return out, nil
}
