package search

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"github.com/infomax/infomax/internal/hnsw"
	"github.com/infomax/infomax/internal/store"
	"github.com/infomax/infomax/knn"
)

// ANNSuffix names an index's approximate index: INDEX.hnsw beside INDEX.
const ANNSuffix = ".hnsw"

const annMagic = "infomax-hnsw-1\n"

// ANNHeader describes an approximate index: what it indexes, how it was
// built, and the recall it measured.
type ANNHeader struct {
	Kind           string  `json:"kind"`    // "hnsw"
	Library        string  `json:"library"` // "hnswlib 0.8.0"
	Metric         string  `json:"metric"`  // "cosine": rows normalised, inner product
	Rows           int     `json:"rows"`
	Dim            int     `json:"dim"`
	ConfigHash     string  `json:"config_hash"` // of the index's features' model
	Step           int64   `json:"step"`
	M              int     `json:"m"`
	EfConstruction int     `json:"ef_construction"`
	EfSearch       int     `json:"ef_search"` // the search width a search uses unless told another
	Recall         float64 `json:"recall_at_10"`
	// RecallQueries rows, drawn at random and held out of the graph until
	// the recall was measured against an exact search of the rest.
	RecallQueries int     `json:"recall_queries"`
	BuildSeconds  float64 `json:"build_seconds"`
	GraphBytes    int     `json:"graph_bytes"`
}

// ANN is an index's approximate index (HNSW, cosine). Search is safe for
// concurrent use; Close frees it.
type ANN struct {
	Header ANNHeader
	ix     *ANNIndex
}

// ANNIndex is hnsw.Index and ANNParams hnsw.Params, named here so that
// callers need not import it.
type (
	ANNIndex  = hnsw.Index
	ANNParams = hnsw.Params
)

// Close frees the graph.
func (a *ANN) Close() { a.ix.Close() }

// unitRows is a copy of f's rows, normalised (a zero row stays zero).
func unitRows(f knn.Features) []float32 {
	out := make([]float32, len(f.Data))
	for r := 0; r < f.Len(); r++ {
		row, dst := f.Data[r*f.Dim:(r+1)*f.Dim], out[r*f.Dim:(r+1)*f.Dim]
		ss := 0.0
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		if ss == 0 {
			continue
		}
		inv := float32(1 / math.Sqrt(ss))
		for j, v := range row {
			dst[j] = v * inv
		}
	}
	return out
}

// BuildANN builds ix's approximate index: an HNSW graph of its rows
// (normalised: cosine) with p, searched at efSearch. It measures the
// recall@10 first: up to 500 rows drawn at random (seeded) are held out of
// the graph, searched in it and by exact search of the other rows, and
// then added. The exact search runs in session o.
func BuildANN(ctx context.Context, ix *Index, p hnsw.Params, efSearch int, o knn.Options) (*ANN, error) {
	n, d := ix.Features.Len(), ix.Features.Dim
	if n == 0 {
		return nil, ErrEmpty
	}
	t0 := time.Now()
	rows := unitRows(ix.Features)
	h := min(500, n/10)
	perm := rand.New(rand.NewPCG(uint64(n), 17)).Perm(n)
	held, kept := perm[:h], perm[h:]
	g, err := hnsw.New(n, d, p, 1)
	if err != nil {
		return nil, err
	}
	// Rows go in by chunks, so that no second copy of them is made.
	add := func(idx []int) error {
		const chunk = 1 << 14
		data, labels := make([]float32, 0, chunk*d), make([]int64, 0, chunk)
		for c := 0; c < len(idx); c += chunk {
			data, labels = data[:0], labels[:0]
			for _, r := range idx[c:min(c+chunk, len(idx))] {
				data = append(data, rows[r*d:(r+1)*d]...)
				labels = append(labels, int64(r))
			}
			if err := g.Add(data, labels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := add(kept); err != nil {
		g.Close()
		return nil, err
	}
	a := &ANN{ix: g, Header: ANNHeader{Kind: "hnsw", Library: "hnswlib 0.8.0", Metric: string(knn.Cosine), Rows: n, Dim: d,
		ConfigHash: ix.ConfigHash, Step: ix.Step, M: p.M, EfConstruction: p.EfConstruction, EfSearch: efSearch, RecallQueries: h, Recall: 1}}
	if h > 0 {
		heldData := make([]float32, 0, h*d)
		for _, r := range held {
			heldData = append(heldData, rows[r*d:(r+1)*d]...)
		}
		k := min(10, len(kept))
		exact, err := exactOf(ctx, pickRows{rows, d, kept}, knn.Features{Data: heldData, Dim: d}, k, o)
		if err != nil {
			g.Close()
			return nil, err
		}
		found, _, err := g.Search(heldData, k, efSearch)
		if err != nil {
			g.Close()
			return nil, err
		}
		hits := 0
		for q := 0; q < h; q++ {
			want := map[int64]bool{}
			for _, i := range exact.Index[q*k : (q+1)*k] {
				want[int64(kept[i])] = true
			}
			for _, l := range found[q*k : (q+1)*k] {
				if want[l] {
					hits++
				}
			}
		}
		a.Header.Recall = float64(hits) / float64(h*k)
		if err := add(held); err != nil {
			g.Close()
			return nil, err
		}
	}
	a.Header.BuildSeconds = time.Since(t0).Seconds()
	return a, nil
}

// pickRows are the rows idx of a row-major array, as knn.Rows (no copy).
type pickRows struct {
	data []float32
	dim  int
	idx  []int
}

func (p pickRows) Len() int   { return len(p.idx) }
func (p pickRows) Width() int { return p.dim }
func (p pickRows) Row(i int, dst []float32) {
	copy(dst, p.data[p.idx[i]*p.dim:(p.idx[i]+1)*p.dim])
}

func exactOf(ctx context.Context, bank knn.Rows, queries knn.Features, k int, o knn.Options) (*knn.Neighbours, error) {
	o.Metric = knn.Cosine
	b, err := knn.NewBank(bank, o)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return b.Search(ctx, queries, k)
}

// Search returns the k nearest rows of ix (whose approximate index a is)
// to each query, by cosine, weighing ef candidates (0: the header's).
func (a *ANN) Search(ix *Index, queries knn.Features, k, ef int) ([][]Hit, error) {
	if queries.Dim != a.Header.Dim {
		return nil, fmt.Errorf("search: queries of dimension %d, the index has %d", queries.Dim, a.Header.Dim)
	}
	if ef <= 0 {
		ef = a.Header.EfSearch
	}
	k = min(k, a.Header.Rows)
	labels, sims, err := a.ix.Search(unitRows(queries), k, ef)
	if err != nil {
		return nil, err
	}
	out := make([][]Hit, queries.Len())
	for q := range out {
		for j := 0; j < k; j++ {
			l := labels[q*k+j]
			if l < 0 {
				continue
			}
			out[q] = append(out[q], Hit{Path: ix.Paths[l], Index: int(l), Score: float64(sims[q*k+j])})
		}
	}
	return out, nil
}

// ANNPath is where the approximate index of the index at path lives.
func ANNPath(path string) string { return path + ANNSuffix }

// Save writes the approximate index: a magic line, the header's length
// and JSON, then hnswlib's graph; one file or one upload.
func (a *ANN) Save(ctx context.Context, path string) error {
	graph, err := a.ix.Bytes()
	if err != nil {
		return err
	}
	a.Header.GraphBytes = len(graph)
	head, err := json.Marshal(a.Header)
	if err != nil {
		return err
	}
	return store.Write(ctx, path, func(w io.Writer) error {
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(len(head)))
		for _, b := range [][]byte{[]byte(annMagic), n[:], head, graph} {
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return nil
	})
}

const maxANNHeader = 1 << 16

// LoadANN reads the approximate index at path for the index ix: its
// header must describe ix (rows, dimension, model), and its graph pass
// hnsw.Check, before hnswlib reads it. Each error names the file.
func LoadANN(ctx context.Context, path string, ix *Index) (*ANN, error) {
	n, d := ix.Features.Len(), ix.Features.Dim
	// The graph of n rows holds each row's vector, label and bottom links,
	// and upper levels a fraction of that: bounded before anything is read.
	max := int64(len(annMagic)+4+maxANNHeader) + int64(n)*int64(4*d+8+4+8*hnsw.MaxM+4)*2 + 1<<20
	raw, err := store.ReadFile(ctx, path, max)
	if err != nil {
		return nil, err
	}
	bad := func(format string, a ...any) (*ANN, error) {
		return nil, fmt.Errorf("%s: "+format, append([]any{path}, a...)...)
	}
	if !bytes.HasPrefix(raw, []byte(annMagic)) || len(raw) < len(annMagic)+4 {
		return bad("not an approximate index this project wrote")
	}
	hl := int(binary.LittleEndian.Uint32(raw[len(annMagic):]))
	body := raw[len(annMagic)+4:]
	if hl > maxANNHeader || hl > len(body) {
		return bad("a header of %d bytes in %d", hl, len(body))
	}
	var h ANNHeader
	if err := json.Unmarshal(body[:hl], &h); err != nil {
		return bad("its header: %v", err)
	}
	switch {
	case h.Kind != "hnsw" || h.Metric != string(knn.Cosine):
		return bad("an index of kind %q, metric %q: want hnsw, cosine", h.Kind, h.Metric)
	case h.Rows != n || h.Dim != d:
		return bad("indexes %d rows of dimension %d, the index %d of %d: build it again (`runner index --ann hnsw`)", h.Rows, h.Dim, n, d)
	case h.ConfigHash != ix.ConfigHash || h.Step != ix.Step:
		return bad("was built over features of spec %.12s at step %d, the index's are of %.12s at step %d: build it again", h.ConfigHash, h.Step, ix.ConfigHash, ix.Step)
	case h.EfSearch < 1 || h.EfSearch > hnsw.MaxEfConstruction:
		return bad("efSearch %d", h.EfSearch)
	}
	g, err := hnsw.Load(body[hl:], n, d)
	if err != nil {
		return bad("%v", err)
	}
	return &ANN{Header: h, ix: g}, nil
}
