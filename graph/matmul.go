package graph

import (
	"fmt"
	"time"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"

	"github.com/infomax/infomax/internal/tfutil"
)

// MatMulRate measures TensorFlow's n×n matrix product in dtype (float32 or
// bfloat16) on this machine, in GFLOP/s: the best of reps products after
// one warm-up, in a session of opts. What model.precision auto asks before
// it trusts a CPU's bfloat16 flags (config.AutoPrecision): the product is
// what both training and encoding spend their time in.
func MatMulRate(opts Options, dtype string, n, reps int) (float64, error) {
	var dt tf.DataType
	switch dtype {
	case "float32":
		dt = tf.Float
	case "bfloat16":
		dt = tf.Bfloat16
	default:
		return 0, fmt.Errorf("matmul rate: dtype %q: want float32 or bfloat16", dtype)
	}
	if n < 1 || reps < 1 {
		return 0, fmt.Errorf("matmul rate: n %d, reps %d: want at least 1", n, reps)
	}
	s := op.NewScope()
	shape := op.Const(s.SubScope("shape"), []int32{int32(n), int32(n)})
	a := op.Cast(s.SubScope("a"), op.RandomUniform(s.SubScope("ra"), shape, tf.Float, op.RandomUniformSeed(1)), dt)
	b := op.Cast(s.SubScope("b"), op.RandomUniform(s.SubScope("rb"), shape, tf.Float, op.RandomUniformSeed(2)), dt)
	// The inputs are drawn once (Identity of a variable-free draw would
	// draw again): keep them as the product's inputs through placeholders.
	pa := op.Placeholder(s.SubScope("pa"), dt, op.PlaceholderShape(tf.MakeShape(int64(n), int64(n))))
	pb := op.Placeholder(s.SubScope("pb"), dt, op.PlaceholderShape(tf.MakeShape(int64(n), int64(n))))
	prod := op.Sum(s, op.Cast(s.SubScope("out"), op.MatMul(s, pa, pb), tf.Float), op.Const(s.SubScope("axes"), []int32{0, 1}))
	g, err := s.Finalize()
	if err != nil {
		return 0, fmt.Errorf("matmul rate: %w", err)
	}
	sess, err := NewSession(g, opts)
	if err != nil {
		return 0, err
	}
	defer sess.Close()
	in, err := sess.Run(nil, []tf.Output{a, b}, nil)
	if err != nil {
		return 0, fmt.Errorf("matmul rate: %w", err)
	}
	defer tfutil.Free(in...)
	feeds := map[tf.Output]*tf.Tensor{pa: in[0], pb: in[1]}
	best := time.Duration(0)
	for i := 0; i <= reps; i++ {
		t := time.Now()
		out, err := sess.Run(feeds, []tf.Output{prod}, nil)
		if err != nil {
			return 0, fmt.Errorf("matmul rate: %w", err)
		}
		d := time.Since(t)
		tfutil.Free(out...)
		if i > 0 && (best == 0 || d < best) {
			best = d
		}
	}
	return 2 * float64(n) * float64(n) * float64(n) / best.Seconds() / 1e9, nil
}
