package graph_test

import (
	"testing"

	"github.com/infomax/infomax/graph"
)

// MatMulRate measures both dtypes (bfloat16 runs everywhere, natively or
// not) and refuses what it cannot measure. No rate is asserted: it is the
// machine's.
func TestMatMulRate(t *testing.T) {
	for _, dt := range []string{"float32", "bfloat16"} {
		r, err := graph.MatMulRate(graph.Options{IntraOpThreads: 2, InterOpThreads: 1}, dt, 256, 2)
		if err != nil || !(r > 0) {
			t.Fatalf("%s: %v GFLOP/s, %v", dt, r, err)
		}
		t.Logf("%s: %.1f GFLOP/s (256², busy machines vary)", dt, r)
	}
	for _, c := range []struct {
		dt      string
		n, reps int
	}{{"float16", 8, 1}, {"float32", 0, 1}, {"float32", 8, 0}} {
		if _, err := graph.MatMulRate(graph.Options{}, c.dt, c.n, c.reps); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}
