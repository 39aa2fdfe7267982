package eval

import (
	"context"
	"fmt"
	"math"

	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/knn"
)

// Vote turns neighbours into a predicted class per query.
//
// Ties are broken deterministically: among classes with the same score the one
// whose best-ranked neighbour comes first wins (for 1-NN, equal similarities
// already keep the lower bank index first).
type Vote func(sims []float32, classes []int, numClasses int) int

// Majority counts each of the first k neighbours once.
func Majority(k int) Vote {
	return func(sims []float32, classes []int, numClasses int) int {
		score := make([]float64, numClasses)
		for i := 0; i < k && i < len(classes); i++ {
			score[classes[i]]++
		}
		return best(score, classes)
	}
}

// Weighted lets each of the first k neighbours vote exp(similarity / t) for its
// class: the weighted kNN of instance discrimination (Wu et al., 2018) that
// self-supervised learning papers and libraries report, with k = 200, t = 0.1.
func Weighted(k int, t float64) Vote {
	return func(sims []float32, classes []int, numClasses int) int {
		score := make([]float64, numClasses)
		for i := 0; i < k && i < len(classes); i++ {
			score[classes[i]] += math.Exp(float64(sims[i]) / t)
		}
		return best(score, classes)
	}
}

// best returns the class with the highest score; ties go to the class that
// appears first in the ranked neighbour list.
func best(score []float64, ranked []int) int {
	top := math.Inf(-1)
	for _, s := range score {
		top = math.Max(top, s)
	}
	for _, c := range ranked {
		if score[c] == top {
			return c
		}
	}
	return 0
}

// Accuracy is the fraction of queries whose vote equals their label.
func Accuracy(nb *knn.Neighbours, bankLabels, queryLabels []int, numClasses int, vote Vote) (float64, error) {
	nq := len(nb.Index) / nb.K
	if nq != len(queryLabels) {
		return 0, fmt.Errorf("knn: %d queries searched, %d labels", nq, len(queryLabels))
	}
	classes := make([]int, nb.K)
	correct := 0
	for q := 0; q < nq; q++ {
		for i := 0; i < nb.K; i++ {
			classes[i] = bankLabels[nb.Index[q*nb.K+i]]
		}
		if vote(nb.Sim[q*nb.K:(q+1)*nb.K], classes, numClasses) == queryLabels[q] {
			correct++
		}
	}
	return float64(correct) / float64(nq), nil
}

// KNNSettings choose the kNN classifiers of a report.
type KNNSettings struct {
	K           int     // majority vote over the K nearest
	WeightedK   int     // weighted vote over the WeightedK nearest
	Temperature float64 // weight exp(similarity / Temperature)
	Chunk       int     // queries per similarity block (0: knn.ChunkFor the bank)
	Session     graph.Options
}

// KNNResult holds top-1 accuracies of kNN classifiers: cosine 1-NN, majority
// and weighted votes, and Euclidean 1-NN.
type KNNResult struct {
	L2NN1       float64 `json:"l2_nn1"`
	Top1NN      float64 `json:"nn1"`
	Majority    float64 `json:"majority"`
	K           int     `json:"k"`
	Weighted    float64 `json:"weighted"`
	WeightedK   int     `json:"weighted_k"`
	Temperature float64 `json:"temperature"`
}

// KNN classifies every query by its nearest bank rows (one search serves all
// three classifiers).
func KNN(ctx context.Context, bank knn.Rows, bankLabels []int, queries knn.Rows, queryLabels []int, numClasses int, s KNNSettings) (*KNNResult, error) {
	return KNNWith(func(m knn.Metric, k int) (*knn.Neighbours, error) {
		return knn.Search(ctx, bank, queries, k, knn.Options{Metric: m, Chunk: s.Chunk, Session: s.Session})
	}, bank.Len(), &bankLabels, queryLabels, numClasses, s)
}

// KNNWith computes a KNNResult from search, which finds every query's k
// nearest bank rows by a metric: one cosine search for the three votes, one
// Euclidean for 1-NN. bankLabels is read after each search (a streamed
// bank's labels are known once it has been read).
func KNNWith(search func(m knn.Metric, k int) (*knn.Neighbours, error), bankRows int, bankLabels *[]int, queryLabels []int, numClasses int, s KNNSettings) (*KNNResult, error) {
	nb, err := search(knn.Cosine, min(max(s.K, s.WeightedK, 1), bankRows))
	if err != nil {
		return nil, fmt.Errorf("cosine search: %w", err)
	}
	res := &KNNResult{K: s.K, WeightedK: s.WeightedK, Temperature: s.Temperature}
	for _, c := range []struct {
		dst  *float64
		vote Vote
	}{{&res.Top1NN, Majority(1)}, {&res.Majority, Majority(s.K)}, {&res.Weighted, Weighted(s.WeightedK, s.Temperature)}} {
		if *c.dst, err = Accuracy(nb, *bankLabels, queryLabels, numClasses, c.vote); err != nil {
			return nil, fmt.Errorf("votes: %w", err)
		}
	}
	l2, err := search(knn.L2, 1)
	if err != nil {
		return nil, fmt.Errorf("Euclidean search: %w", err)
	}
	if res.L2NN1, err = Accuracy(l2, *bankLabels, queryLabels, numClasses, Majority(1)); err != nil {
		return nil, fmt.Errorf("Euclidean 1-NN: %w", err)
	}
	return res, nil
}
