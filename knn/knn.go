// Package knn finds nearest neighbours among feature vectors: cosine
// similarity (the measure of self-supervised learning's kNN evaluation) or
// Euclidean distance. It works on plain row-major float32 arrays; the scores
// and the top k run in TensorFlow, a block of queries at a time, so the whole
// query × bank matrix is never held at once. Package eval classifies with it
// and package search answers queries with it.
package knn

import (
	"context"
	"fmt"
	"math"

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

// Normalized returns a copy with every row scaled to unit L2 norm (a zero row stays zero).
func (f Features) Normalized() Features {
	out := make([]float32, len(f.Data))
	for i := 0; i < f.Len(); i++ {
		row := f.Data[i*f.Dim : (i+1)*f.Dim]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		if ss == 0 {
			continue
		}
		inv := float32(1 / math.Sqrt(ss))
		for j, v := range row {
			out[i*f.Dim+j] = v * inv
		}
	}
	return Features{Data: out, Dim: f.Dim}
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
// bank is searched fewer queries at a time (ChunkFor).
const MaxBlockBytes = 256 << 20

// ChunkFor is the number of queries searched at once against a bank of n
// features: Chunk, or fewer when the block would pass MaxBlockBytes.
func ChunkFor(n int) int { return max(1, min(Chunk, MaxBlockBytes/(4*max(1, n)))) }

// Options choose a search.
type Options struct {
	Metric Metric // Cosine when ""
	Chunk  int    // queries per block; 0: ChunkFor(the bank's size)
	// Session sets up the TensorFlow session (threads, device) as the run's
	// other sessions are.
	Session graph.Options
}

// knnGraph scores queries against the bank (a matmul: cosine on normalised
// rows, or 2·q·b − |b|² for Euclidean) and keeps the top k of each row.
type knnGraph struct {
	graph                            *tf.Graph
	queries, bank, bankSq, vals, idx tf.Output
}

func newKNNGraph(d int64, k int, metric Metric) (*knnGraph, error) {
	s := op.NewScope()
	g := &knnGraph{}
	g.queries = op.Placeholder(s.SubScope("queries"), tf.Float, op.PlaceholderShape(tf.MakeShape(-1, d)))
	g.bank = op.Placeholder(s.SubScope("bank"), tf.Float, op.PlaceholderShape(tf.MakeShape(-1, d)))
	sim := op.MatMul(s, g.queries, g.bank, op.MatMulTransposeB(true))
	switch metric {
	case L2:
		g.bankSq = op.Placeholder(s.SubScope("bank_sq"), tf.Float, op.PlaceholderShape(tf.MakeShape(-1)))
		sim = op.Sub(s, op.Mul(s, sim, op.Const(s.SubScope("two"), float32(2))), g.bankSq)
	case Cosine:
	default:
		return nil, fmt.Errorf("knn: metric %q: want cosine or l2", metric)
	}
	g.vals, g.idx = op.TopKV2(s, sim, op.Const(s.SubScope("k"), int32(k)))
	var err error
	if g.graph, err = s.Finalize(); err != nil {
		return nil, fmt.Errorf("knn graph: %w", err)
	}
	return g, nil
}

// Search finds the k nearest bank rows for every query, a block of queries
// at a time: one block × bank of scores exists at once. A cancelled ctx
// stops it between blocks. For L2 the score is
// 2·q·b − |b|² (the same order as −|q − b|²), turned into −|q − b| for Sim.
func Search(ctx context.Context, bank, queries Features, k int, o Options) (*Neighbours, error) {
	if err := bank.Check(); err != nil {
		return nil, fmt.Errorf("knn: bank: %w", err)
	}
	if err := queries.Check(); err != nil {
		return nil, fmt.Errorf("knn: queries: %w", err)
	}
	if bank.Dim != queries.Dim {
		return nil, fmt.Errorf("knn: bank has dimension %d, queries %d", bank.Dim, queries.Dim)
	}
	if k < 1 || k > bank.Len() {
		return nil, fmt.Errorf("knn: k = %d, the bank has %d rows", k, bank.Len())
	}
	metric, chunk := o.Metric, o.Chunk
	if metric == "" {
		metric = Cosine
	}
	if chunk <= 0 {
		chunk = ChunkFor(bank.Len())
	}
	g, err := newKNNGraph(int64(bank.Dim), k, metric)
	if err != nil {
		return nil, err
	}
	sess, err := graph.NewSession(g.graph, o.Session)
	if err != nil {
		return nil, fmt.Errorf("knn: %w", err)
	}
	defer sess.Close()

	nq, nb := queries, bank
	feeds := map[tf.Output]*tf.Tensor{}
	defer func() {
		for _, t := range feeds {
			tfutil.Free(t)
		}
	}()
	if metric == Cosine {
		nq, nb = queries.Normalized(), bank.Normalized()
	} else {
		sq := make([]float32, bank.Len())
		for i := range sq {
			sq[i] = float32(sqNorm(bank.Data[i*bank.Dim : (i+1)*bank.Dim]))
		}
		sqT, err := tfutil.FromFloat32s(sq, int64(len(sq)))
		if err != nil {
			return nil, err
		}
		feeds[g.bankSq] = sqT
	}
	bankT, err := tensor(nb)
	if err != nil {
		return nil, err
	}
	feeds[g.bank] = bankT
	out := &Neighbours{K: k, Index: make([]int32, 0, nq.Len()*k), Sim: make([]float32, 0, nq.Len()*k)}
	for start := 0; start < nq.Len(); start += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(start+chunk, nq.Len())
		sims, idxs, err := block(sess, g, feeds, Features{Data: nq.Data[start*bank.Dim : end*bank.Dim], Dim: bank.Dim})
		if err != nil {
			return nil, err
		}
		if metric == L2 {
			for r := range sims {
				qi := start + r/k
				d2 := sqNorm(nq.Data[qi*bank.Dim:(qi+1)*bank.Dim]) - float64(sims[r])
				sims[r] = -float32(math.Sqrt(math.Max(d2, 0)))
			}
		}
		out.Sim = append(out.Sim, sims...)
		out.Index = append(out.Index, idxs...)
	}
	return out, nil
}

// block scores one block of queries, freeing its tensors before it returns.
func block(sess *tf.Session, g *knnGraph, feeds map[tf.Output]*tf.Tensor, q Features) ([]float32, []int32, error) {
	qT, err := tensor(q)
	if err != nil {
		return nil, nil, err
	}
	defer tfutil.Free(qT)
	feeds[g.queries] = qT
	defer delete(feeds, g.queries)
	res, err := sess.Run(feeds, []tf.Output{g.vals, g.idx}, nil)
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

func sqNorm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return s
}

func tensor(f Features) (*tf.Tensor, error) {
	return tfutil.FromFloat32s(f.Data, int64(f.Len()), int64(f.Dim))
}
