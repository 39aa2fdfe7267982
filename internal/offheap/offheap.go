// Package offheap holds large buffers outside Go's heap, in an anonymous mapping.
//
// Package offheap holds large pointer-free buffers outside Go's heap, in an
// anonymous memory mapping: Go's collector neither scans them nor counts
// them towards its heap goal, so a long-lived buffer of N bytes costs N, not
// the up-to-2N that GOGC 100 lets the heap grow to around it while other
// code makes garbage. Memory is committed page by page as it is written.
// The caller frees what it took; a library cannot change the process's
// collector instead.
package offheap

import (
	"fmt"
	"sync"
	"syscall"
	"unsafe"
)

// Float32s returns a slice of n float32 (zero) outside Go's heap and the
// function that unmaps it (once, however often it is called); the slice
// must not be used after that. n = 0
// gives an empty slice and a no-op.
func Float32s(n int) ([]float32, func(), error) {
	if n < 0 {
		return nil, nil, fmt.Errorf("offheap: %d float32s", n)
	}
	if n == 0 {
		return []float32{}, func() {}, nil
	}
	b, err := syscall.Mmap(-1, 0, n*4, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil, fmt.Errorf("offheap: map %d bytes: %w", n*4, err)
	}
	f := unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
	var once sync.Once // a second call must not unmap what was mapped there since
	return f, func() { once.Do(func() { syscall.Munmap(b) }) }, nil
}
