// Package knn finds nearest neighbours among feature vectors (cosine or Euclidean).
//
// Package knn finds nearest neighbours among feature vectors: cosine
// similarity (the measure of self-supervised learning's kNN evaluation) or
// Euclidean distance. It works on plain row-major float32 arrays; the scores
// and the top k run in TensorFlow, a block of queries at a time, so the whole
// query × bank matrix is never held at once. Package eval classifies with it
// and package search answers queries with it.
package knn

import (
	"iter"

	"context"
	"fmt"
	"io"
	"math"
	"unsafe"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"

	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/tfutil"
)

// Features are N row-major vectors of Dim float32.
type Features struct {
	Data []float32
	Dim  int
}

// Len is the number of vectors.
func (f Features) Len() int {
	if f.Dim == 0 {
		return 0
	}
	return len(f.Data) / f.Dim
}

// Width is the row length (Dim), as Rows has it.
func (f Features) Width() int { return f.Dim }

// Row copies row i into dst.
func (f Features) Row(i int, dst []float32) { copy(dst, f.Data[i*f.Dim:(i+1)*f.Dim]) }

// Rows is where a search reads its bank and its queries: Features, or rows
// made on demand (a split's pixels scaled as the model's input, say), so
// that a wide bank is never held as float32 in Go as well as in TensorFlow.
type Rows interface {
	Len() int
	Width() int
	Row(i int, dst []float32) // writes row i's Width() values
}

// Slice is rows [start, end) of r.
func Slice(r Rows, start, end int) Rows { return slice{r, start, end} }

type slice struct {
	r          Rows
	start, end int
}

func (s slice) Len() int                 { return s.end - s.start }
func (s slice) Width() int               { return s.r.Width() }
func (s slice) Row(i int, dst []float32) { s.r.Row(s.start+i, dst) }

// checkRows checks what can be checked of r: Features' data, a width.
func checkRows(r Rows) error {
	if f, ok := r.(Features); ok {
		return f.Check()
	}
	if r.Width() < 1 && r.Len() > 0 {
		return fmt.Errorf("%d rows of width %d", r.Len(), r.Width())
	}
	return nil
}

// Check says what is wrong with f: a negative dimension, or data that is not
// a whole number of rows.
func (f Features) Check() error {
	switch {
	case f.Dim < 0:
		return fmt.Errorf("features of dimension %d", f.Dim)
	case f.Dim == 0 && len(f.Data) > 0:
		return fmt.Errorf("%d feature values of dimension 0", len(f.Data))
	case f.Dim > 0 && len(f.Data)%f.Dim != 0:
		return fmt.Errorf("%d feature values are not whole rows of dimension %d", len(f.Data), f.Dim)
	}
	return nil
}

// Neighbours holds, for each query, the indices of its K most similar bank
// rows and their similarities, most similar first; equal similarities keep
// the lower bank index first (TensorFlow's TopKV2 order).
type Neighbours struct {
	K     int
	Index []int32   // [queries, K]
	Sim   []float32 // [queries, K]
}

// Metric is how neighbours are found.
type Metric string

const (
	// Cosine ranks by cosine similarity (rows L2-normalised); Sim holds it.
	Cosine Metric = "cosine"
	// L2 ranks by Euclidean distance; Sim holds the distance's negative.
	L2 Metric = "l2"
)

// Chunk is the most queries whose scores against the whole bank are held at
// once.
const Chunk = 1024

// MaxBlockBytes bounds a block of scores (chunk × bank float32s): a larger
// bank is searched fewer queries at a time (ChunkFor). TensorFlow keeps
// about three blocks' worth for the top k, and the process keeps that
// memory after the search: at 256 MiB a search of 10,000 queries in 50,000
// features added 400 MiB to the resident set, at 32 MiB 140 MiB, in about
// the same time (3.5–4.5 s here, the machine shared).
const MaxBlockBytes = 32 << 20

// ChunkFor is the number of queries searched at once against a bank of n
// features: Chunk, or fewer when the block would pass MaxBlockBytes.
func ChunkFor(n int) int { return max(1, min(Chunk, MaxBlockBytes/(4*max(1, n)))) }

// Options choose a search.
type Options struct {
	Metric Metric // Cosine when ""
	Chunk  int    // queries per block; 0: ChunkFor(the bank block's size)
	// BankRows is how many bank rows TensorFlow holds at once (0: as many as
	// MaxBankBytes allows); each block's top k is merged into the queries'.
	BankRows int
	// Session sets up the TensorFlow session (threads, device) as the run's
	// other sessions are.
	Session graph.Options
}

// knnGraph scores queries against the bank with one matmul and keeps the
// top k of each row. The rows fed are made for the metric: unit rows for
// cosine; for Euclidean, bank rows [b, |b|²] and query rows [2q, −1], whose
// product is 2·q·b − |b|² (the order of −|q − b|²), so a block of scores is
// the only block-sized tensor the graph makes.
type knnGraph struct {
	graph                       *tf.Graph
	queries, bank, k, vals, idx tf.Output
}

func newKNNGraph(width int64) (*knnGraph, error) {
	s := op.NewScope()
	g := &knnGraph{}
	g.queries = op.Placeholder(s.SubScope("queries"), tf.Float, op.PlaceholderShape(tf.MakeShape(-1, width)))
	g.bank = op.Placeholder(s.SubScope("bank"), tf.Float, op.PlaceholderShape(tf.MakeShape(-1, width)))
	sim := op.MatMul(s, g.queries, g.bank, op.MatMulTransposeB(true))
	g.k = op.Placeholder(s.SubScope("k"), tf.Int32, op.PlaceholderShape(tf.ScalarShape()))
	g.vals, g.idx = op.TopKV2(s, sim, g.k)
	var err error
	if g.graph, err = s.Finalize(); err != nil {
		return nil, fmt.Errorf("knn graph: %w", err)
	}
	return g, nil
}

// rows are what a metric feeds for a bank row and for a query row (width
// values each, from a row of Features).
type rows struct {
	width       int
	bank, query func(dst, src []float32)
}

func rowsFor(metric Metric, d int) (rows, error) {
	switch metric {
	case Cosine:
		return rows{width: d, bank: unit, query: unit}, nil
	case L2:
		return rows{width: d + 1,
			bank: func(dst, src []float32) { copy(dst, src); dst[d] = float32(sqNorm(src)) },
			query: func(dst, src []float32) {
				for i, v := range src {
					dst[i] = 2 * v
				}
				dst[d] = -1
			}}, nil
	}
	return rows{}, fmt.Errorf("knn: metric %q: want cosine or l2", metric)
}

// unit writes src scaled to unit L2 norm (a zero row stays zero).
func unit(dst, src []float32) {
	ss := sqNorm(src)
	if ss == 0 {
		clear(dst)
		return
	}
	inv := float32(1 / math.Sqrt(ss))
	for i, v := range src {
		dst[i] = v * inv
	}
}

// Search finds the k nearest bank rows for every query, a block of queries
// at a time: one block × bank of scores exists at once. The rows go into
// TensorFlow's tensors as they are made (normalised, or extended for
// Euclidean), so the bank is held once in Go and once in TensorFlow, never
// copied a third time. A cancelled ctx stops it between blocks. For L2, Sim
// holds −|q − b|.
func Search(ctx context.Context, bank, queries Rows, k int, o Options) (*Neighbours, error) {
	if err := checkRows(bank); err != nil {
		return nil, fmt.Errorf("knn: bank: %w", err)
	}
	if err := checkRows(queries); err != nil {
		return nil, fmt.Errorf("knn: queries: %w", err)
	}
	if bank.Width() != queries.Width() {
		return nil, fmt.Errorf("knn: bank has dimension %d, queries %d", bank.Width(), queries.Width())
	}
	if k < 1 || k > bank.Len() {
		return nil, fmt.Errorf("knn: k = %d, the bank has %d rows", k, bank.Len())
	}
	rs, err := rowsFor(o.metric(), bank.Width())
	if err != nil {
		return nil, err
	}
	// The bank a block of rows at a time when it is large: TensorFlow holds
	// the block, and the matmul a packed copy of it, never the whole bank.
	per := o.BankRows
	if per <= 0 {
		per = max(k, MaxBankBytes/(4*rs.width))
	}
	blocks := func(yield func(Rows, error) bool) {
		for b0 := 0; b0 < bank.Len(); b0 += per {
			if !yield(Slice(bank, b0, min(b0+per, bank.Len())), nil) {
				return
			}
		}
	}
	return SearchBlocks(ctx, blocks, queries, k, o)
}

func (o Options) metric() Metric {
	if o.Metric == "" {
		return Cosine
	}
	return o.Metric
}

// SearchBlocks is Search over a bank that comes a block of rows at a time,
// in bank order (read from files as the search goes, so that a bank larger
// than memory is searched holding one block): each block's top k is merged
// into the queries', bank indices counting from the first block's first
// row. A block's error stops the search with it.
func SearchBlocks(ctx context.Context, blocks iter.Seq2[Rows, error], queries Rows, k int, o Options) (*Neighbours, error) {
	if err := checkRows(queries); err != nil {
		return nil, fmt.Errorf("knn: queries: %w", err)
	}
	if k < 1 {
		return nil, fmt.Errorf("knn: k = %d: want at least 1", k)
	}
	metric := o.metric()
	rs, err := rowsFor(metric, queries.Width())
	if err != nil {
		return nil, err
	}
	g, err := newKNNGraph(int64(rs.width))
	if err != nil {
		return nil, err
	}
	sess, err := graph.NewSession(g.graph, o.Session)
	if err != nil {
		return nil, fmt.Errorf("knn: %w", err)
	}
	defer sess.Close()
	var top *Neighbours
	seen := 0
	for blk, err := range blocks {
		if err != nil {
			return nil, err
		}
		if err := checkRows(blk); err != nil {
			return nil, fmt.Errorf("knn: bank: %w", err)
		}
		if blk.Len() == 0 {
			continue
		}
		if blk.Width() != queries.Width() {
			return nil, fmt.Errorf("knn: bank has dimension %d, queries %d", blk.Width(), queries.Width())
		}
		nb, err := searchBlock(ctx, sess, g, blk, queries, min(k, blk.Len()), o.Chunk, rs)
		if err != nil {
			return nil, err
		}
		if top == nil {
			top = nb
		} else {
			for i := range nb.Index {
				nb.Index[i] += int32(seen)
			}
			top = merge(top, nb, k)
		}
		seen += blk.Len()
	}
	if seen < k {
		return nil, fmt.Errorf("knn: k = %d, the bank has %d rows", k, seen)
	}
	if metric == L2 {
		euclidean(top, queries)
	}
	return top, nil
}

// MaxBankBytes bounds the bank rows TensorFlow holds at once: a larger bank
// (raw pixels of a large data set, features beyond memory) is searched a
// block of rows at a time, each block's top k merged into the queries'.
// Below it, one block: the search is what it always was.
const MaxBankBytes = 256 << 20

// searchBlock finds the k best rows of one bank block for every query, by
// the graph's score, a block of queries at a time.
func searchBlock(ctx context.Context, sess *tf.Session, g *knnGraph, bank, queries Rows, k, chunk int, rs rows) (*Neighbours, error) {
	if chunk <= 0 {
		chunk = ChunkFor(bank.Len())
	}
	bankT, err := rowTensor(bank, rs.width, rs.bank)
	if err != nil {
		return nil, err
	}
	defer tfutil.Free(bankT)
	kT, err := tf.NewTensor(int32(k))
	if err != nil {
		return nil, err
	}
	defer tfutil.Free(kT)
	out := &Neighbours{K: k, Index: make([]int32, 0, queries.Len()*k), Sim: make([]float32, 0, queries.Len()*k)}
	for start := 0; start < queries.Len(); start += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(start+chunk, queries.Len())
		sims, idxs, err := block(sess, g, bankT, kT, Slice(queries, start, end), rs)
		if err != nil {
			return nil, err
		}
		out.Sim = append(out.Sim, sims...)
		out.Index = append(out.Index, idxs...)
	}
	return out, nil
}

// merge keeps, for every query, the k best of a's and b's neighbours, both
// best first; b's rows come after a's in the bank, so on equal scores a's
// rank first (TopKV2's order, lower index first, over the whole bank).
func merge(a, b *Neighbours, k int) *Neighbours {
	n := len(a.Index) / a.K
	k = min(k, a.K+b.K) // the first blocks may hold fewer than k rows
	out := &Neighbours{K: k, Index: make([]int32, 0, n*k), Sim: make([]float32, 0, n*k)}
	for q := 0; q < n; q++ {
		ai, as := a.Index[q*a.K:(q+1)*a.K], a.Sim[q*a.K:(q+1)*a.K]
		bi, bs := b.Index[q*b.K:(q+1)*b.K], b.Sim[q*b.K:(q+1)*b.K]
		i, j := 0, 0
		for taken := 0; taken < k && (i < len(ai) || j < len(bi)); taken++ {
			if j == len(bi) || (i < len(ai) && as[i] >= bs[j]) {
				out.Index, out.Sim = append(out.Index, ai[i]), append(out.Sim, as[i])
				i++
			} else {
				out.Index, out.Sim = append(out.Index, bi[j]), append(out.Sim, bs[j])
				j++
			}
		}
	}
	return out
}

// block scores one block of queries, freeing its tensors before it returns.
func block(sess *tf.Session, g *knnGraph, bankT, kT *tf.Tensor, q Rows, rs rows) ([]float32, []int32, error) {
	qT, err := rowTensor(q, rs.width, rs.query)
	if err != nil {
		return nil, nil, err
	}
	defer tfutil.Free(qT)
	res, err := sess.Run(map[tf.Output]*tf.Tensor{g.bank: bankT, g.queries: qT, g.k: kT}, []tf.Output{g.vals, g.idx}, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("knn: %w", err)
	}
	defer tfutil.Free(res...)
	sims, err := tfutil.Float32s(res[0])
	if err != nil {
		return nil, nil, err
	}
	idxs, err := tfutil.Int32s(res[1])
	return sims, idxs, err
}

// rowTensor makes a float32 [f.Len(), width] tensor of f's rows, each
// written by row, straight into the tensor's memory.
func rowTensor(f Rows, width int, row func(dst, src []float32)) (*tf.Tensor, error) {
	r := &rowReader{f: f, row: row, src: make([]float32, f.Width()), tmp: make([]float32, width)}
	return tf.ReadTensor(tf.Float, []int64{int64(f.Len()), int64(width)}, r)
}

// rowReader yields f's rows, each made by row, as little-endian float32
// bytes.
type rowReader struct {
	f        Rows
	row      func(dst, src []float32)
	src, tmp []float32
	i        int
	left     []byte
}

func (r *rowReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.left) == 0 {
			if r.i == r.f.Len() {
				if n == 0 {
					return 0, io.EOF
				}
				return n, nil
			}
			r.f.Row(r.i, r.src)
			r.row(r.tmp, r.src)
			r.i++
			r.left = unsafe.Slice((*byte)(unsafe.Pointer(&r.tmp[0])), 4*len(r.tmp))
		}
		c := copy(p[n:], r.left)
		n += c
		r.left = r.left[c:]
	}
	return n, nil
}

func sqNorm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return s
}
