package eval

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
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

// The last convolutional map's figures: the 1-NN votes on the maps
// flattened and averaged over their positions equal brute force's on the
// same rows (the averages taken here, position by position), and the
// averaged rows are what AveragePositions gives.
func TestConvScoresMatchBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const classes, hw, c = 4, 9, 6
	sample := func(n int) (knn.Features, []int) {
		f := randomFeatures(r, n, hw*c)
		labels := make([]int, n)
		for i := range labels {
			labels[i] = r.IntN(classes)
			for p := range hw { // a class shifts one channel at every position
				f.Data[i*hw*c+p*c+labels[i]] += 0.4
			}
		}
		return f, labels
	}
	bank, bl := sample(300)
	queries, ql := sample(100)
	s := Settings{Classes: classes, K: 5, WeightedK: 10, Temperature: 0.1, ConvChannels: c, MLPProbeEpochs: 0,
		ConvFeatures: func(context.Context) (knn.Features, knn.Features, func(), error) {
			return bank, queries, func() {}, nil
		}}
	sc := &Scores{}
	if err := convScores(t.Context(), sc, bl, ql, s); err != nil {
		t.Fatal(err)
	}
	mean := func(f knn.Features) knn.Features {
		out := knn.Features{Dim: c}
		for i := range f.Len() {
			for k := range c {
				var sum float64
				for p := range hw {
					sum += float64(f.Data[i*hw*c+p*c+k])
				}
				out.Data = append(out.Data, float32(sum/hw))
			}
		}
		return out
	}
	avgBank, avgQueries := mean(bank), mean(queries)
	if got := AveragePositions(bank, c); !slices.Equal(got.Data, avgBank.Data) || got.Dim != c {
		t.Fatalf("AveragePositions differs from the mean of the positions")
	}
	for _, x := range []struct {
		name          string
		got           *Scores
		bank, queries knn.Features
	}{{"flattened", sc.Conv, bank, queries}, {"averaged", sc.ConvAvg, avgBank, avgQueries}} {
		right := 0
		for q := range x.queries.Len() {
			if idx, _ := bruteForce(x.bank, x.queries, q); bl[idx[0]] == ql[q] {
				right++
			}
		}
		if want := float64(right) / float64(x.queries.Len()); x.got == nil || x.got.KNN.Top1NN != want || x.got.Dim != x.bank.Dim {
			t.Errorf("%s: %+v, want 1-NN %.4f of dimension %d", x.name, x.got, want, x.bank.Dim)
		} else {
			t.Logf("%s (%d values): 1-NN %.4f, weighted kNN %.4f", x.name, x.got.Dim, x.got.KNN.Top1NN, x.got.KNN.Weighted)
		}
	}
}
