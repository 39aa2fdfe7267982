// Package tfutil moves flat Go slices in and out of graft tensors by copying bytes.
//
// Package tfutil moves flat Go slices in and out of graft tensors by copying
// bytes, without graft's reflection over nested slices, and frees a tensor's
// C memory as soon as its caller is done with it (Free).
package tfutil

/*
#cgo LDFLAGS: -ltensorflow
#include "tensorflow/c/c_api.h"
*/
import "C"

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	tf "github.com/wamuir/graft/tensorflow"
)

// graft frees a tensor's C memory only in a finalizer, and its Go object is
// tiny, so Go's collector, which sees only Go memory, seldom runs while the C
// heap grows (`runner eval` once reached 24 GB). Earlier this package forced
// a collection every 16 MB of tensors: a process-wide policy that a library
// must not set behind its user's back. Free instead deletes one tensor's C
// memory at once, as TF_DeleteTensor does in graft's finalizer.
//
// graft keeps the C pointer in an unexported field; cOffset locates it once,
// by name and kind (graft v0.10.0: Tensor{c *C.TF_Tensor; shape []int64}).
// If a graft release changes that, Layout reports it and Free leaves tensors
// to their finalizers (correct, only later).
var cOffset = func() uintptr {
	f, ok := reflect.TypeOf(tf.Tensor{}).FieldByName("c")
	if !ok || f.Type.Kind() != reflect.Pointer || !strings.HasSuffix(f.Type.Elem().Name(), "TF_Tensor") {
		return ^uintptr(0)
	}
	return f.Offset
}()

// Layout says whether Free can free tensors at once (false: graft's Tensor
// changed, and tensors wait for their finalizers).
func Layout() bool { return cOffset != ^uintptr(0) }

// Free releases the C memory of tensors the caller will not use again (nil
// entries, and tensors freed already, are skipped). A freed tensor must not
// be used again: its C pointer is cleared (graft would crash on it, not read
// freed memory).
func Free(ts ...*tf.Tensor) {
	if !Layout() {
		return
	}
	for _, t := range ts {
		if t == nil {
			continue
		}
		p := (**C.TF_Tensor)(unsafe.Add(unsafe.Pointer(t), cOffset))
		if *p == nil {
			continue
		}
		runtime.SetFinalizer(t, nil)
		C.TF_DeleteTensor(*p)
		*p = nil
	}
}

// FromFloat32s builds a float32 tensor of the given shape from a flat slice.
func FromFloat32s(data []float32, shape ...int64) (*tf.Tensor, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("tensor of shape %v: no data", shape)
	}
	return tf.ReadTensor(tf.Float, shape, bytes.NewReader(unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), 4*len(data))))
}

// Float32s copies a float32 tensor's contents into a new flat slice.
func Float32s(t *tf.Tensor) ([]float32, error) {
	if t.DataType() != tf.Float {
		return nil, fmt.Errorf("tensor is dtype %d, want float32", t.DataType())
	}
	out := make([]float32, numElements(t))
	return out, copyOut(t, out)
}

// Float32sInto copies a float32 tensor's contents into dst, which must
// hold exactly its elements (a buffer reused across calls).
func Float32sInto(t *tf.Tensor, dst []float32) error {
	if t.DataType() != tf.Float {
		return fmt.Errorf("tensor is dtype %d, want float32", t.DataType())
	}
	if n := numElements(t); n != len(dst) {
		return fmt.Errorf("tensor holds %d values, the buffer %d", n, len(dst))
	}
	return copyOut(t, dst)
}

// Float32View is a float32 tensor's contents in place, without a copy:
// valid until the tensor is freed (Free) or collected, so the caller keeps
// the tensor alive while it reads (runtime.KeepAlive). Where graft's layout
// is not the one this package knows, it is a copy.
func Float32View(t *tf.Tensor) ([]float32, error) {
	if t.DataType() != tf.Float {
		return nil, fmt.Errorf("tensor is dtype %d, want float32", t.DataType())
	}
	if !Layout() {
		return Float32s(t)
	}
	c := *(**C.TF_Tensor)(unsafe.Add(unsafe.Pointer(t), cOffset))
	n := numElements(t)
	if c == nil || n == 0 {
		return nil, nil
	}
	if int(C.TF_TensorByteSize(c)) != 4*n {
		return nil, fmt.Errorf("tensor holds %d bytes for %d float32s", int(C.TF_TensorByteSize(c)), n)
	}
	return unsafe.Slice((*float32)(C.TF_TensorData(c)), n), nil
}

// Int32s copies an int32 tensor's contents into a new flat slice.
func Int32s(t *tf.Tensor) ([]int32, error) {
	if t.DataType() != tf.Int32 {
		return nil, fmt.Errorf("tensor is dtype %d, want int32", t.DataType())
	}
	out := make([]int32, numElements(t))
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
