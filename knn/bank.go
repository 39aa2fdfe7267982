package knn

import (
	"context"
	"fmt"
	"math"

	tf "github.com/wamuir/graft/tensorflow"

	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/tfutil"
)

// BankBlockRows is how many rows each of a Bank's tensors holds: a block
// of queries is scored against one block of the bank at a time, so the
// scores fit the caches (1,024 queries × 8,192 rows: 32 MiB), and a query
// block reads the bank once whatever its size.
const BankBlockRows = 8192

// Bank is a bank made ready for many searches (a search index's features):
// its rows are made into TensorFlow tensors once (normalised for cosine,
// extended for Euclidean) in blocks of BankBlockRows, with one session, so
// a search feeds only its queries. Search is safe for concurrent use.
// Close frees the tensors and the session.
type Bank struct {
	metric Metric
	rs     rows
	n, dim int
	blocks []*tf.Tensor
	sizes  []int
	chunk  int
	g      *knnGraph
	sess   *tf.Session
}

// NewBank prepares bank for searches with o's metric, session, block size
// (BankRows; 0: BankBlockRows) and query chunk (Chunk; 0: ChunkFor the
// block size).
func NewBank(bank Rows, o Options) (*Bank, error) {
	if err := checkRows(bank); err != nil {
		return nil, fmt.Errorf("knn: bank: %w", err)
	}
	rs, err := rowsFor(o.metric(), bank.Width())
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
	per := o.BankRows
	if per <= 0 {
		per = BankBlockRows
	}
	b := &Bank{metric: o.metric(), rs: rs, n: bank.Len(), dim: bank.Width(), g: g, sess: sess, chunk: o.Chunk}
	if b.chunk <= 0 {
		b.chunk = ChunkFor(per)
	}
	for b0 := 0; b0 < bank.Len(); b0 += per {
		t, err := rowTensor(Slice(bank, b0, min(b0+per, bank.Len())), rs.width, rs.bank)
		if err != nil {
			b.Close()
			return nil, err
		}
		b.blocks = append(b.blocks, t)
		b.sizes = append(b.sizes, min(per, bank.Len()-b0))
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
	kTs := map[int]*tf.Tensor{}
	defer func() {
		for _, t := range kTs {
			tfutil.Free(t)
		}
	}()
	out := &Neighbours{K: k, Index: make([]int32, 0, queries.Len()*k), Sim: make([]float32, 0, queries.Len()*k)}
	for start := 0; start < queries.Len(); start += b.chunk {
		q := Slice(queries, start, min(start+b.chunk, queries.Len()))
		qT, err := rowTensor(q, b.rs.width, b.rs.query)
		if err != nil {
			return nil, err
		}
		var top *Neighbours
		seen := 0
		for i, blk := range b.blocks {
			if err := ctx.Err(); err != nil {
				tfutil.Free(qT)
				return nil, err
			}
			kb := min(k, b.sizes[i])
			if kTs[kb] == nil {
				if kTs[kb], err = tf.NewTensor(int32(kb)); err != nil {
					tfutil.Free(qT)
					return nil, err
				}
			}
			sims, idxs, err := b.run(blk, kTs[kb], qT)
			if err != nil {
				tfutil.Free(qT)
				return nil, err
			}
			nb := &Neighbours{K: kb, Index: idxs, Sim: sims}
			if top == nil {
				top = nb
			} else {
				for j := range nb.Index {
					nb.Index[j] += int32(seen)
				}
				top = merge(top, nb, k)
			}
			seen += b.sizes[i]
		}
		tfutil.Free(qT)
		out.Index = append(out.Index, top.Index...)
		out.Sim = append(out.Sim, top.Sim...)
	}
	if b.metric == L2 {
		euclidean(out, queries)
	}
	return out, nil
}

func (b *Bank) run(bankT, kT, qT *tf.Tensor) ([]float32, []int32, error) {
	res, err := b.sess.Run(map[tf.Output]*tf.Tensor{b.g.bank: bankT, b.g.queries: qT, b.g.k: kT}, []tf.Output{b.g.vals, b.g.idx}, nil)
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
