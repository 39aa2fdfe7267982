package eval

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func randomFeatures(r *rand.Rand, n, d int) Features {
	f := Features{Data: make([]float32, n*d), Dim: d}
	for i := range f.Data {
		f.Data[i] = float32(r.NormFloat64())
	}
	return f
}

// bruteForce ranks every bank row for one query by cosine similarity in
// float64, ties to the lower index.
func bruteForce(bank, queries Features, q int) (idx []int, sim []float64) {
	cos := func(a, b []float32) float64 {
		var ab, aa, bb float64
		for i := range a {
			ab += float64(a[i]) * float64(b[i])
			aa += float64(a[i]) * float64(a[i])
			bb += float64(b[i]) * float64(b[i])
		}
		return ab / math.Sqrt(aa*bb)
	}
	d := bank.Dim
	qv := queries.Data[q*d : (q+1)*d]
	sim = make([]float64, bank.Len())
	idx = make([]int, bank.Len())
	for i := range idx {
		idx[i] = i
		sim[i] = cos(qv, bank.Data[i*d:(i+1)*d])
	}
	sort.SliceStable(idx, func(a, b int) bool { return sim[idx[a]] > sim[idx[b]] })
	return idx, sim
}

func TestSearchMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	bank, queries := randomFeatures(r, 700, 24), randomFeatures(r, 130, 24)
	const k = 15
	nb, err := Search(bank, queries, k, 32) // chunks of 32: the last chunk is partial
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

func TestKNNAccuraciesMatchBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const classes, dim = 5, 8
	// Class-dependent means so that accuracies are far from chance and from 1.
	centres := randomFeatures(r, classes, dim)
	sample := func(n int) (Features, []int) {
		f := randomFeatures(r, n, dim)
		labels := []int{}
		for i := 0; i < n; i++ {
			c := r.IntN(classes)
			labels = append(labels, c)
			for j := 0; j < dim; j++ {
				f.Data[i*dim+j] += 1.2 * centres.Data[c*dim+j]
			}
		}
		return f, labels
	}
	bank, bl := sample(600)
	queries, ql := sample(200)
	s := KNNSettings{K: 20, WeightedK: 50, Temperature: 0.1, Chunk: 64}
	got, err := KNN(bank, bl, queries, ql, classes, s)
	if err != nil {
		t.Fatal(err)
	}
	var nn1, maj, wtd, l2 int
	for q := 0; q < queries.Len(); q++ {
		idx, sim := bruteForce(bank, queries, q)
		if bl[idx[0]] == ql[q] {
			nn1++
		}
		best, bestD := -1, math.Inf(1)
		for i := 0; i < bank.Len(); i++ {
			var d2 float64
			for j := 0; j < dim; j++ {
				v := float64(queries.Data[q*dim+j] - bank.Data[i*dim+j])
				d2 += v * v
			}
			if d2 < bestD {
				best, bestD = i, d2
			}
		}
		if bl[best] == ql[q] {
			l2++
		}
		votes, weights := [classes]float64{}, [classes]float64{}
		for j := 0; j < s.K; j++ {
			votes[bl[idx[j]]]++
		}
		for j := 0; j < s.WeightedK; j++ {
			weights[bl[idx[j]]] += math.Exp(sim[idx[j]] / s.Temperature)
		}
		pick := func(score [classes]float64) int { // ties: first class in rank order
			top := score[0]
			for _, v := range score {
				top = math.Max(top, v)
			}
			for _, i := range idx {
				if score[bl[i]] == top {
					return bl[i]
				}
			}
			return -1
		}
		if pick(votes) == ql[q] {
			maj++
		}
		if pick(weights) == ql[q] {
			wtd++
		}
	}
	n := float64(queries.Len())
	want := KNNResult{Top1NN: float64(nn1) / n, Majority: float64(maj) / n, Weighted: float64(wtd) / n, L2NN1: float64(l2) / n}
	if got.Top1NN != want.Top1NN || got.Majority != want.Majority || got.Weighted != want.Weighted || got.L2NN1 != want.L2NN1 {
		t.Errorf("kNN %+v, brute force %+v", *got, want)
	}
	if want.Majority < 0.3 || want.Majority > 0.99 {
		t.Errorf("test data too easy or too hard: majority accuracy %v", want.Majority)
	}
}

func TestMajorityTieGoesToNearestClass(t *testing.T) {
	// Two votes each for classes 3 and 1; class 1's neighbour ranks first.
	if got := Majority(4)([]float32{.9, .8, .7, .6}, []int{1, 3, 3, 1}, 5); got != 1 {
		t.Errorf("tie: class %d, want 1", got)
	}
}

func TestSearchErrors(t *testing.T) {
	f := Features{Data: make([]float32, 12), Dim: 4}
	if _, err := Search(f, Features{Data: make([]float32, 6), Dim: 3}, 1, 8); err == nil {
		t.Error("dimension mismatch accepted")
	}
	if _, err := Search(f, f, 4, 8); err == nil {
		t.Error("k larger than the bank accepted")
	}
}

func TestL2SearchMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	bank, queries := randomFeatures(r, 500, 12), randomFeatures(r, 70, 12)
	for i := range bank.Data { // rows of different norms, so L2 and cosine disagree
		bank.Data[i] *= float32(1 + i/12%5)
	}
	const k = 5
	nb, err := SearchMetric(bank, queries, k, 16, L2)
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
