package eval

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/infomax/infomax/testkit/brute"

	"github.com/infomax/infomax/knn"
)

func randomFeatures(r *rand.Rand, n, d int) knn.Features {
	return knn.Features{Data: brute.Normal(r, n, d), Dim: d}
}

// bruteForce ranks every bank row for one query by cosine similarity in
// float64, ties to the lower index.
func bruteForce(bank, queries knn.Features, q int) (idx []int, sim []float64) {
	return brute.Cosine(bank.Data, queries.Data, bank.Dim, q)
}

func TestKNNAccuraciesMatchBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const classes, dim = 5, 8
	// Class-dependent means so that accuracies are far from chance and from 1.
	centres := randomFeatures(r, classes, dim)
	sample := func(n int) (knn.Features, []int) {
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
	got, err := KNN(t.Context(), bank, bl, queries, ql, classes, s)
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
