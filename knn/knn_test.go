package knn

import (
	"context"
	"errors"
	"iter"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/infomax/infomax/testkit/brute"
)

func randomFeatures(r *rand.Rand, n, d int) Features {
	return Features{Data: brute.Normal(r, n, d), Dim: d}
}

// bruteForce ranks every bank row for one query by cosine similarity in
// float64, ties to the lower index.
func bruteForce(bank, queries Features, q int) (idx []int, sim []float64) {
	return brute.Cosine(bank.Data, queries.Data, bank.Dim, q)
}

func TestSearchMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	bank, queries := randomFeatures(r, 700, 24), randomFeatures(r, 130, 24)
	const k = 15
	nb, err := Search(t.Context(), bank, queries, k, Options{Chunk: 32}) // chunks of 32: the last chunk is partial
	if err != nil {
		t.Fatal(err)
	}
	for q := 0; q < queries.Len(); q++ {
		idx, sim := bruteForce(bank, queries, q)
		for j := 0; j < k; j++ {
			got := nb.Index[q*k+j]
			if math.Abs(float64(nb.Sim[q*k+j])-sim[idx[j]]) > 1e-5 {
				t.Fatalf("query %d rank %d: similarity %v, brute force %v", q, j, nb.Sim[q*k+j], sim[idx[j]])
			}
			// Near-equal similarities may swap ranks in float32; the set of
			// similarities must still agree.
			if int(got) != idx[j] && math.Abs(sim[got]-sim[idx[j]]) > 1e-5 {
				t.Fatalf("query %d rank %d: index %d, brute force %d", q, j, got, idx[j])
			}
		}
	}
}

func TestSearchErrors(t *testing.T) {
	f := Features{Data: make([]float32, 12), Dim: 4}
	if _, err := Search(t.Context(), f, Features{Data: make([]float32, 6), Dim: 3}, 1, Options{Chunk: 8}); err == nil {
		t.Error("dimension mismatch accepted")
	}
	if _, err := Search(t.Context(), f, f, 4, Options{Chunk: 8}); err == nil {
		t.Error("k larger than the bank accepted")
	}
	if _, err := Search(t.Context(), Features{Data: make([]float32, 13), Dim: 4}, f, 1, Options{}); err == nil {
		t.Error("a bank of 13 values in rows of 4 accepted")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Search(ctx, f, f, 1, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled search: %v", err)
	}
}

func TestL2SearchMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	bank, queries := randomFeatures(r, 500, 12), randomFeatures(r, 70, 12)
	for i := range bank.Data { // rows of different norms, so L2 and cosine disagree
		bank.Data[i] *= float32(1 + i/12%5)
	}
	const k = 5
	nb, err := Search(t.Context(), bank, queries, k, Options{Chunk: 16, Metric: L2})
	if err != nil {
		t.Fatal(err)
	}
	d := bank.Dim
	for q := 0; q < queries.Len(); q++ {
		dist := make([]float64, bank.Len())
		idx := make([]int, bank.Len())
		for i := range idx {
			idx[i] = i
			for j := 0; j < d; j++ {
				v := float64(queries.Data[q*d+j] - bank.Data[i*d+j])
				dist[i] += v * v
			}
			dist[i] = math.Sqrt(dist[i])
		}
		sort.SliceStable(idx, func(a, b int) bool { return dist[idx[a]] < dist[idx[b]] })
		for j := 0; j < k; j++ {
			got := int(nb.Index[q*k+j])
			if math.Abs(float64(-nb.Sim[q*k+j])-dist[idx[j]]) > 1e-3 {
				t.Fatalf("query %d rank %d: distance %v, brute force %v", q, j, -nb.Sim[q*k+j], dist[idx[j]])
			}
			if got != idx[j] && math.Abs(dist[got]-dist[idx[j]]) > 1e-4 {
				t.Fatalf("query %d rank %d: index %d, brute force %d", q, j, got, idx[j])
			}
		}
	}
}

// A bank searched a block of rows at a time (a bank too large to hold whole
// in TensorFlow) gives what the whole bank gives, by both metrics, with
// blocks smaller and larger than k and a last block shorter than the rest;
// equal scores across blocks keep the lower index first.
func TestBankBlocksMatchTheWholeBank(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	bank, queries := randomFeatures(r, 301, 16), randomFeatures(r, 40, 16)
	copy(bank.Data[250*16:251*16], bank.Data[3*16:4*16]) // rows 3 and 250 tie for every query
	for _, metric := range []Metric{Cosine, L2} {
		whole, err := Search(t.Context(), bank, queries, 20, Options{Metric: metric})
		if err != nil {
			t.Fatal(err)
		}
		for _, rows := range []int{7, 37, 300} {
			got, err := Search(t.Context(), bank, queries, 20, Options{Metric: metric, BankRows: rows})
			if err != nil {
				t.Fatal(err)
			}
			// Scores equal to float32's rounding: a product over a block is
			// summed in another order than over the whole bank where
			// TensorFlow runs Eigen's kernels (oneDNN off: CPUs without
			// AVX-512); an index may differ only between scores that tie.
			for i := range whole.Index {
				tie := math.Abs(float64(got.Sim[i]-whole.Sim[i])) <= 1e-6*math.Max(1, math.Abs(float64(whole.Sim[i])))
				if !tie || got.Index[i] != whole.Index[i] && !tiesAt(whole, i, got.Index[i]) {
					t.Fatalf("%s, blocks of %d rows: query %d rank %d: %d (%v), the whole bank: %d (%v)",
						metric, rows, i/20, i%20, got.Index[i], got.Sim[i], whole.Index[i], whole.Sim[i])
				}
			}
		}
	}
}

// tiesAt says whether bank row j is among the neighbours n found for the
// query of result i, with a score within float32's rounding of result i's.
func tiesAt(n *Neighbours, i int, j int32) bool {
	q := i / n.K
	for r := q * n.K; r < (q+1)*n.K; r++ {
		if n.Index[r] == j {
			return math.Abs(float64(n.Sim[r]-n.Sim[i])) <= 1e-6*math.Max(1, math.Abs(float64(n.Sim[i])))
		}
	}
	return false
}

// A bank streamed in blocks of uneven sizes (shards of a sharded folder)
// gives what the whole bank gives; a block's error stops the search; a bank
// that turns out smaller than k is an error.
func TestSearchBlocksOfUnevenSizes(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	bank, queries := randomFeatures(r, 120, 8), randomFeatures(r, 30, 8)
	sizes := []int{3, 50, 1, 0, 66}
	blocks := func(fail bool) iter.Seq2[Rows, error] {
		return func(yield func(Rows, error) bool) {
			at := 0
			for i, n := range sizes {
				if fail && i == 2 {
					yield(nil, errors.New("shard 2: unreadable"))
					return
				}
				if !yield(Slice(bank, at, at+n), nil) {
					return
				}
				at += n
			}
		}
	}
	for _, metric := range []Metric{Cosine, L2} {
		whole, err := Search(t.Context(), bank, queries, 10, Options{Metric: metric})
		if err != nil {
			t.Fatal(err)
		}
		got, err := SearchBlocks(t.Context(), blocks(false), queries, 10, Options{Metric: metric})
		if err != nil {
			t.Fatal(err)
		}
		// A block's matmul may round the last bit otherwise than the whole
		// bank's: similarities to 1e-5, neighbours the same.
		for i := range whole.Index {
			if got.Index[i] != whole.Index[i] || math.Abs(float64(got.Sim[i]-whole.Sim[i])) > 1e-5 {
				t.Fatalf("%s: query %d rank %d: %d (%v), the whole bank: %d (%v)", metric, i/10, i%10, got.Index[i], got.Sim[i], whole.Index[i], whole.Sim[i])
			}
		}
	}
	if _, err := SearchBlocks(t.Context(), blocks(true), queries, 10, Options{}); err == nil || !strings.Contains(err.Error(), "shard 2") {
		t.Errorf("a block's error: %v", err)
	}
	if _, err := SearchBlocks(t.Context(), blocks(false), queries, 121, Options{}); err == nil || !strings.Contains(err.Error(), "120 rows") {
		t.Errorf("k past the bank: %v", err)
	}
}

// A Bank prepared once gives what Search gives, by both metrics, with
// blocks smaller and larger than k, a last block shorter than the rest,
// partial query chunks; searched again, and from two goroutines at once,
// it gives the same again.
func TestPreparedBankMatchesSearch(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	bank, queries := randomFeatures(r, 301, 16), randomFeatures(r, 40, 16)
	copy(bank.Data[250*16:251*16], bank.Data[3*16:4*16]) // rows 3 and 250 tie for every query
	for _, metric := range []Metric{Cosine, L2} {
		want, err := Search(t.Context(), bank, queries, 20, Options{Metric: metric})
		if err != nil {
			t.Fatal(err)
		}
		for _, rows := range []int{7, 37, 300, 0} {
			b, err := NewBank(bank, Options{Metric: metric, BankRows: rows, Chunk: 16})
			if err != nil {
				t.Fatal(err)
			}
			results := make([]*Neighbours, 3)
			errs := make([]error, 3)
			results[0], errs[0] = b.Search(t.Context(), queries, 20)
			done := make(chan int)
			for g := 1; g < 3; g++ {
				go func() {
					results[g], errs[g] = b.Search(t.Context(), queries, 20)
					done <- g
				}()
			}
			<-done
			<-done
			for g, got := range results {
				if errs[g] != nil {
					t.Fatal(errs[g])
				}
				for q := 0; q < queries.Len(); q++ {
					row := got.Index[q*20 : (q+1)*20]
					if a, b := slices.Index(row, 3), slices.Index(row, 250); b >= 0 && (a < 0 || a > b) {
						t.Fatalf("%s, blocks of %d rows: query %d: row 250 ranks before its twin row 3: %v", metric, rows, q, row)
					}
				}
				for i := range want.Index {
					tie := math.Abs(float64(got.Sim[i]-want.Sim[i])) <= 1e-6*math.Max(1, math.Abs(float64(want.Sim[i])))
					if !tie || got.Index[i] != want.Index[i] && !tiesAt(want, i, got.Index[i]) {
						t.Fatalf("%s, blocks of %d rows, search %d: query %d rank %d: %d (%v), Search: %d (%v)",
							metric, rows, g, i/20, i%20, got.Index[i], got.Sim[i], want.Index[i], want.Sim[i])
					}
				}
			}
			if _, err := b.Search(t.Context(), Features{Data: make([]float32, 6), Dim: 3}, 1); err == nil {
				t.Error("queries of another dimension accepted")
			}
			if _, err := b.Search(t.Context(), queries, 302); err == nil {
				t.Error("k larger than the bank accepted")
			}
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if _, err := b.Search(ctx, queries, 3); !errors.Is(err, context.Canceled) {
				t.Errorf("a cancelled search: %v", err)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}
