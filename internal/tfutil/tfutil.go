// Package tfutil moves flat Go slices in and out of graft tensors by copying
// bytes, without graft's reflection over nested slices, and keeps the C memory
// of discarded tensors from piling up (Track).
package tfutil

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	tf "github.com/wamuir/graft/tensorflow"

	_ "github.com/infomax/infomax/internal/tflog" // TensorFlow's log lines off unless asked for
)

// GCEvery bounds how much C tensor memory may wait for Go's finalizers. A
// graft tensor's memory is freed only when the collector finalizes its Go
// object, which is tiny: without a nudge the collector rarely runs while the C
// heap grows (`runner eval` on CIFAR-10, mostly its linear probe on raw
// pixels, once reached 24 GB).
const GCEvery = 16 << 20

var pending atomic.Int64 // C tensor bytes made since the last collection

// Track counts n bytes of C tensor memory that will become garbage, and runs
// the collector once GCEvery bytes are waiting. The helpers of this package
// track what they create and read; code making tensors otherwise calls it.
func Track(n int64) {
	if pending.Add(n) > GCEvery {
		pending.Store(0)
		runtime.GC()
	}
}

// FromFloat32s builds a float32 tensor of the given shape from a flat slice.
func FromFloat32s(data []float32, shape ...int64) (*tf.Tensor, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("tensor of shape %v: no data", shape)
	}
	Track(int64(4 * len(data)))
	return tf.ReadTensor(tf.Float, shape, bytes.NewReader(unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), 4*len(data))))
}

// Float32s copies a float32 tensor's contents into a new flat slice.
func Float32s(t *tf.Tensor) ([]float32, error) {
	if t.DataType() != tf.Float {
		return nil, fmt.Errorf("tensor is dtype %d, want float32", t.DataType())
	}
	out := make([]float32, numElements(t))
	Track(int64(4 * len(out)))
	return out, copyOut(t, out)
}

// Int32s copies an int32 tensor's contents into a new flat slice.
func Int32s(t *tf.Tensor) ([]int32, error) {
	if t.DataType() != tf.Int32 {
		return nil, fmt.Errorf("tensor is dtype %d, want int32", t.DataType())
	}
	out := make([]int32, numElements(t))
	Track(int64(4 * len(out)))
	return out, copyOut(t, out)
}

func numElements(t *tf.Tensor) int {
	n := 1
	for _, d := range t.Shape() {
		n *= int(d)
	}
	return n
}

// copyOut writes the tensor's bytes over the memory of a 4-byte slice.
func copyOut[T float32 | int32](t *tf.Tensor, dst []T) error {
	if len(dst) == 0 {
		return nil
	}
	w := sliceWriter{buf: unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), 4*len(dst))}
	if _, err := t.WriteContentsTo(&w); err != nil {
		return err
	}
	if w.n != len(w.buf) {
		return fmt.Errorf("tensor holds %d bytes, want %d", w.n, len(w.buf))
	}
	return nil
}

type sliceWriter struct {
	buf []byte
	n   int
}

func (w *sliceWriter) Write(p []byte) (int, error) {
	if len(p) > len(w.buf)-w.n {
		return 0, io.ErrShortWrite
	}
	w.n += copy(w.buf[w.n:], p)
	return len(p), nil
}

// Output resolves a tensor name ("op:index", or "op" for index 0) in a graph.
func Output(g *tf.Graph, name string) (tf.Output, error) {
	op, idx := name, 0
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		n, err := strconv.Atoi(name[i+1:])
		if err != nil {
			return tf.Output{}, fmt.Errorf("tensor name %q: %w", name, err)
		}
		op, idx = name[:i], n
	}
	o := g.Operation(op)
	if o == nil {
		return tf.Output{}, fmt.Errorf("tensor %q: no operation %q in the graph", name, op)
	}
	if idx >= o.NumOutputs() {
		return tf.Output{}, fmt.Errorf("tensor %q: operation has %d outputs", name, o.NumOutputs())
	}
	return o.Output(idx), nil
}
