package knn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"

	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/tfutil"
)

// BankBlockRows is how many rows each of a Bank's tensors holds: a block
// of queries is scored against one block of the bank at a time, so the
// scores stay small (1,024 queries × 8,192 rows: 32 MiB), and a query
// block reads the bank once whatever its size.
const BankBlockRows = 8192

// Bank is a bank made ready for many searches (a search index's features):
// its rows are made into TensorFlow tensors once (normalised for cosine,
// extended for Euclidean; as columns, so that the product needs no
// transpose) in blocks of BankBlockRows, with one session, so that a
// search feeds only its queries. TensorFlow computes each block of scores;
// the k best of each query are kept in Go as the blocks go, in one pass
// over the scores against the k-th best so far (TensorFlow's TopKV2 took
// about 40% of a batch's time: docs/speed.md, "Search beside FAISS"). Search is
// safe for concurrent use. Close frees the tensors and the session.
type Bank struct {
	metric Metric
	rs     rows
	n, dim int
	blocks []*tf.Tensor
	sizes  []int
	chunk  int
	sess   *tf.Session
	// The graph: scores = queries · bank block.
	queries, bank, scores tf.Output
}

// NewBank prepares bank for searches with o's metric, session, block size
// (BankRows; 0: BankBlockRows) and query chunk (Chunk; 0: ChunkFor the
// block size). It reads bank's rows from several goroutines at once
// (Features' rows may be).
func NewBank(bank Rows, o Options) (*Bank, error) {
	if err := checkRows(bank); err != nil {
		return nil, fmt.Errorf("knn: bank: %w", err)
	}
	rs, err := rowsFor(o.metric(), bank.Width())
	if err != nil {
		return nil, err
	}
	s := op.NewScope()
	b := &Bank{metric: o.metric(), rs: rs, n: bank.Len(), dim: bank.Width(), chunk: o.Chunk}
	w := int64(rs.width)
	b.queries = op.Placeholder(s.SubScope("queries"), tf.Float, op.PlaceholderShape(tf.MakeShape(-1, w)))
	b.bank = op.Placeholder(s.SubScope("bank"), tf.Float, op.PlaceholderShape(tf.MakeShape(w, -1)))
	b.scores = op.MatMul(s, b.queries, b.bank)
	g, err := s.Finalize()
	if err != nil {
		return nil, fmt.Errorf("knn graph: %w", err)
	}
	if b.sess, err = graph.NewSession(g, o.Session); err != nil {
		return nil, fmt.Errorf("knn: %w", err)
	}
	per := o.BankRows
	if per <= 0 {
		per = BankBlockRows
	}
	if b.chunk <= 0 {
		b.chunk = ChunkFor(per)
	}
	// The blocks are made on every core (normalising and transposing a
	// million rows took 8 s on one).
	nb := (bank.Len() + per - 1) / per
	b.blocks, b.sizes = make([]*tf.Tensor, nb), make([]int, nb)
	errs := make([]error, nb)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(nb, runtime.GOMAXPROCS(0)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []float32 // one staging buffer a worker: no garbage the size of the bank
			for i := int(next.Add(1) - 1); i < nb; i = int(next.Add(1) - 1) {
				b0 := i * per
				b.sizes[i] = min(per, bank.Len()-b0)
				b.blocks[i], buf, errs[i] = columnTensor(Slice(bank, b0, b0+b.sizes[i]), rs.width, rs.bank, buf)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Len is the number of bank rows.
func (b *Bank) Len() int { return b.n }

// Close frees the bank's tensors and session.
func (b *Bank) Close() error {
	tfutil.Free(b.blocks...)
	b.blocks = nil
	return b.sess.Close()
}

// Search finds the k nearest bank rows of every query (as Search does,
// with the same ties: the lower bank index first).
func (b *Bank) Search(ctx context.Context, queries Rows, k int) (*Neighbours, error) {
	if err := checkRows(queries); err != nil {
		return nil, fmt.Errorf("knn: queries: %w", err)
	}
	if queries.Width() != b.dim {
		return nil, fmt.Errorf("knn: bank has dimension %d, queries %d", b.dim, queries.Width())
	}
	if k < 1 || k > b.n {
		return nil, fmt.Errorf("knn: k = %d, the bank has %d rows", k, b.n)
	}
	out := &Neighbours{K: k, Index: make([]int32, queries.Len()*k), Sim: make([]float32, queries.Len()*k)}
	filled := make([]int, queries.Len()) // how many of each query's k are found yet
	for start := 0; start < queries.Len(); start += b.chunk {
		end := min(start+b.chunk, queries.Len())
		if err := b.searchChunk(ctx, Slice(queries, start, end), k, out.Sim[start*k:end*k], out.Index[start*k:end*k], filled[start:end]); err != nil {
			return nil, err
		}
	}
	if b.metric == L2 {
		euclidean(out, queries)
	}
	return out, nil
}

// scored is one block's scores, or the error that stopped them.
type scored struct {
	t     *tf.Tensor
	block int
	err   error
}

// searchChunk keeps the k best of a chunk of queries over every block:
// TensorFlow scores the next block while Go selects from the last one, in
// place in TensorFlow's memory.
func (b *Bank) searchChunk(ctx context.Context, q Rows, k int, sim []float32, idx []int32, filled []int) error {
	qT, err := rowTensor(q, b.rs.width, b.rs.query)
	if err != nil {
		return err
	}
	defer tfutil.Free(qT)
	ch := make(chan scored, 1)
	stop := make(chan struct{})
	go func() {
		defer close(ch)
		for i, blk := range b.blocks {
			if err := ctx.Err(); err != nil {
				ch <- scored{err: err}
				return
			}
			res, err := b.sess.Run(map[tf.Output]*tf.Tensor{b.bank: blk, b.queries: qT}, []tf.Output{b.scores}, nil)
			if err != nil {
				ch <- scored{err: fmt.Errorf("knn: %w", err)}
				return
			}
			select {
			case ch <- scored{t: res[0], block: i}:
			case <-stop:
				tfutil.Free(res...)
				return
			}
		}
	}()
	defer func() {
		close(stop)
		for s := range ch { // the producer's last block, if it made one
			tfutil.Free(s.t)
		}
	}()
	seen := 0
	for s := range ch {
		if s.err != nil {
			return s.err
		}
		scores, err := tfutil.Float32View(s.t)
		if err == nil && len(scores) != q.Len()*b.sizes[s.block] {
			err = fmt.Errorf("knn: %d scores for %d queries × %d rows", len(scores), q.Len(), b.sizes[s.block])
		}
		if err != nil {
			tfutil.Free(s.t)
			return err
		}
		keepBest(scores, b.sizes[s.block], int32(seen), k, sim, idx, filled)
		runtime.KeepAlive(s.t)
		tfutil.Free(s.t)
		seen += b.sizes[s.block]
	}
	return nil
}

// keepBest merges each row of scores (rows of `width` bank rows, the first
// of them bank row `base`) into its query's k best so far (sim, idx: k
// each, best first; filled: how many are set), rows split between the
// cores. A score enters only when it beats the k-th best, so on equal
// scores the lower bank index stays first.
func keepBest(scores []float32, width int, base int32, k int, sim []float32, idx []int32, filled []int) {
	rows := len(filled)
	workers := min(runtime.GOMAXPROCS(0), max(1, rows*width/(1<<16)))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(r0, r1 int) {
			defer wg.Done()
			for r := r0; r < r1; r++ {
				s, ix := sim[r*k:(r+1)*k], idx[r*k:(r+1)*k]
				n := filled[r]
				row := scores[r*width : (r+1)*width]
				for j, v := range row {
					if n == k && !(v > s[k-1]) {
						continue
					}
					// Insert v after the scores at least as good.
					p := n
					if n == k {
						p = k - 1
					} else {
						n++
					}
					for p > 0 && s[p-1] < v {
						s[p], ix[p] = s[p-1], ix[p-1]
						p--
					}
					s[p], ix[p] = v, base+int32(j)
				}
				filled[r] = n
			}
		}(w*rows/workers, (w+1)*rows/workers)
	}
	wg.Wait()
}

// euclidean turns the graph's 2·q·b − |b|² into −|q − b|.
func euclidean(top *Neighbours, queries Rows) {
	row := make([]float32, queries.Width())
	for r := range top.Sim {
		if r%top.K == 0 {
			queries.Row(r/top.K, row)
		}
		d2 := sqNorm(row) - float64(top.Sim[r])
		top.Sim[r] = -float32(math.Sqrt(math.Max(d2, 0)))
	}
}

// columnTensor makes a float32 [width, f.Len()] tensor: f's rows, each
// written by row, as columns, staged in buf (grown when short; returned for
// the next call).
func columnTensor(f Rows, width int, row func(dst, src []float32), buf []float32) (*tf.Tensor, []float32, error) {
	n := f.Len()
	if cap(buf) < width*n {
		buf = make([]float32, width*n)
	}
	cols := buf[:width*n]
	src, tmp := make([]float32, f.Width()), make([]float32, width)
	for i := 0; i < n; i++ {
		f.Row(i, src)
		row(tmp, src)
		for j, v := range tmp {
			cols[j*n+i] = v
		}
	}
	t, err := tf.ReadTensor(tf.Float, []int64{int64(width), int64(n)}, bytes.NewReader(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(cols))), 4*len(cols))))
	return t, buf, err
}
