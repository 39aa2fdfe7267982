// Package hnsw is an approximate nearest-neighbour index: hnswlib's HNSW graph, through cgo.
//
// Package hnsw is an approximate nearest-neighbour index by inner product
// (cosine on unit rows): the HNSW graph of hnswlib 0.8.0 (nmslib's, by the
// HNSW paper's author; third_party/hnswlib), compiled by cgo. Rows are
// labelled by their position. An index is saved in hnswlib's own format,
// and Check reads such a file field by field, bounding every size and
// every neighbour by the file's length and the rows' count, before Load
// lets hnswlib read it: hnswlib's loader allocates and follows what the
// file says.
package hnsw

/*
#cgo CXXFLAGS: -O3 -std=c++17 -mavx -I${SRCDIR}/../../third_party
#cgo LDFLAGS: -lstdc++ -lm -lpthread
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"unsafe"
)

// Params shape the graph: M links a node (2M on the bottom layer),
// EfConstruction the candidates each insertion weighs.
type Params struct {
	M              int `json:"m"`
	EfConstruction int `json:"ef_construction"`
}

// Limits of what an index may say (hnswlib's own limits are wider).
const (
	MaxM              = 256
	MaxEfConstruction = 1 << 16
	MaxLevel          = 64
)

// Index is a built or loaded HNSW index. Search is safe for concurrent
// use; Close frees it.
type Index struct {
	mu  sync.Mutex // hnswlib's search width is one setting of the index
	c   *C.hnsw_index
	dim int
	n   int
}

func cerr(e *C.char) error {
	if e == nil {
		return errors.New("hnswlib: failed")
	}
	defer C.free(unsafe.Pointer(e))
	return errors.New("hnswlib: " + C.GoString(e))
}

// New makes an empty index with room for rows rows of dimension dim;
// seed fixes the layers' random draw.
func New(rows, dim int, p Params, seed uint64) (*Index, error) {
	if dim < 1 || rows < 1 {
		return nil, fmt.Errorf("hnsw: %d rows of dimension %d", rows, dim)
	}
	if p.M < 2 || p.M > MaxM || p.EfConstruction < 1 || p.EfConstruction > MaxEfConstruction {
		return nil, fmt.Errorf("hnsw: M %d, efConstruction %d: want M in 2..%d, efConstruction in 1..%d", p.M, p.EfConstruction, MaxM, MaxEfConstruction)
	}
	var e *C.char
	c := C.hnsw_new(C.int(dim), C.size_t(rows), C.int(p.M), C.int(p.EfConstruction), C.size_t(seed), &e)
	if c == nil {
		return nil, cerr(e)
	}
	return &Index{c: c, dim: dim, n: rows}, nil
}

// Add inserts rows (data: len(labels) rows), each under its label (its
// row position, below the index's room), on every core.
func (ix *Index) Add(data []float32, labels []int64) error {
	if len(labels) == 0 || len(data) != len(labels)*ix.dim {
		return fmt.Errorf("hnsw: %d values for %d rows of dimension %d", len(data), len(labels), ix.dim)
	}
	for _, l := range labels {
		if l < 0 || l >= int64(ix.n) {
			return fmt.Errorf("hnsw: label %d of an index of %d rows", l, ix.n)
		}
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var pinned runtime.Pinner
	pinned.Pin(&data[0])
	pinned.Pin(&labels[0])
	defer pinned.Unpin()
	var e *C.char
	if C.hnsw_add(ix.c, (*C.float)(unsafe.Pointer(&data[0])), (*C.int64_t)(unsafe.Pointer(&labels[0])), C.size_t(len(labels)), C.int(runtime.GOMAXPROCS(0)), &e) != 0 {
		return cerr(e)
	}
	return nil
}

// Build makes the index of the rows of data (dimension dim), labelled by
// position.
func Build(data []float32, dim int, p Params, seed uint64) (*Index, error) {
	if dim < 1 || len(data)%dim != 0 || len(data) == 0 {
		return nil, fmt.Errorf("hnsw: %d values are not rows of dimension %d", len(data), dim)
	}
	n := len(data) / dim
	ix, err := New(n, dim, p, seed)
	if err != nil {
		return nil, err
	}
	labels := make([]int64, n)
	for i := range labels {
		labels[i] = int64(i)
	}
	if err := ix.Add(data, labels); err != nil {
		ix.Close()
		return nil, err
	}
	return ix, nil
}

// Len is the number of rows.
func (ix *Index) Len() int { return ix.n }

// Search finds up to k rows of largest inner product for each query
// (queries: rows of the index's dimension), weighing ef candidates
// (at least k): their positions, best first, and inner products; a
// position is -1 where fewer than k were found.
func (ix *Index) Search(queries []float32, k, ef int) ([]int64, []float32, error) {
	if len(queries)%ix.dim != 0 {
		return nil, nil, fmt.Errorf("hnsw: %d query values are not rows of dimension %d", len(queries), ix.dim)
	}
	nq := len(queries) / ix.dim
	if k < 1 || nq == 0 {
		return nil, nil, fmt.Errorf("hnsw: k = %d, %d queries", k, nq)
	}
	ef = max(ef, k)
	labels := make([]int64, nq*k)
	sims := make([]float32, nq*k)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.c == nil {
		return nil, nil, errors.New("hnsw: index closed")
	}
	var pinned runtime.Pinner
	pinned.Pin(&queries[0])
	pinned.Pin(&labels[0])
	pinned.Pin(&sims[0])
	defer pinned.Unpin()
	var e *C.char
	if C.hnsw_search(ix.c, (*C.float)(unsafe.Pointer(&queries[0])), C.size_t(nq), C.int(k), C.int(ef), C.int(runtime.GOMAXPROCS(0)),
		(*C.int64_t)(unsafe.Pointer(&labels[0])), (*C.float)(unsafe.Pointer(&sims[0])), &e) != 0 {
		return nil, nil, cerr(e)
	}
	for i, d := range sims {
		sims[i] = 1 - d // hnswlib's inner-product distance is 1 − ⟨q, x⟩
		if labels[i] >= int64(ix.n) {
			return nil, nil, fmt.Errorf("hnsw: found row %d of an index of %d", labels[i], ix.n)
		}
	}
	return labels, sims, nil
}

// Close frees the index.
func (ix *Index) Close() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.c != nil {
		C.hnsw_free(ix.c)
		ix.c = nil
	}
}

// Bytes is the index in hnswlib's format (hnswlib writes a file: through a
// temporary one).
func (ix *Index) Bytes() ([]byte, error) {
	dir, err := os.MkdirTemp("", "infomax-hnsw-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "index")
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	ix.mu.Lock()
	var e *C.char
	rc := C.hnsw_save(ix.c, cpath, &e)
	ix.mu.Unlock()
	if rc != 0 {
		return nil, cerr(e)
	}
	return os.ReadFile(path)
}

// headerBytes is the size of hnswlib's header: six size_t, an int, a
// uint32, three size_t, a double and a size_t.
const headerBytes = 6*8 + 4 + 4 + 3*8 + 8 + 8

// Header is what an index file's header says.
type Header struct {
	Rows, Dim, M, EfConstruction, MaxLevel int
}

// Check reads raw as an hnswlib index of rows rows of dimension dim, as
// Build makes them, and says what is wrong: a header field out of its
// bounds or inconsistent with the others, a neighbour or label outside the
// rows, a layer list of the wrong size, bytes missing or left over. Each
// error names the field or the row.
func Check(raw []byte, rows, dim int) (*Header, error) {
	bad := func(format string, a ...any) (*Header, error) {
		return nil, fmt.Errorf("hnsw index: "+format, a...)
	}
	if len(raw) < headerBytes {
		return bad("%d bytes, shorter than its %d-byte header", len(raw), headerBytes)
	}
	le := binary.LittleEndian
	u64 := func(off int) uint64 { return le.Uint64(raw[off:]) }
	offsetLevel0, maxElements, count := u64(0), u64(8), u64(16)
	sizePerElement, labelOffset, offsetData := u64(24), u64(32), u64(40)
	maxLevel, enter := int32(le.Uint32(raw[48:])), le.Uint32(raw[52:])
	maxM, maxM0, m := u64(56), u64(64), u64(72)
	mult, efc := math.Float64frombits(u64(80)), u64(88)
	switch {
	case offsetLevel0 != 0:
		return bad("offsetLevel0 %d, want 0", offsetLevel0)
	case count != uint64(rows) || maxElements != uint64(rows):
		return bad("%d elements (room for %d), the index has %d rows", count, maxElements, rows)
	case m < 2 || m > MaxM || maxM != m || maxM0 != 2*m:
		return bad("M %d, maxM %d, maxM0 %d: want M in 2..%d, maxM = M, maxM0 = 2M", m, maxM, maxM0, MaxM)
	case offsetData != maxM0*4+4 || labelOffset != offsetData+4*uint64(dim) || sizePerElement != labelOffset+8:
		return bad("element layout (links %d, data at %d, label at %d, %d bytes) does not match M %d and dimension %d", maxM0*4+4, offsetData, labelOffset, sizePerElement, m, dim)
	case maxLevel < 0 || maxLevel > MaxLevel:
		return bad("top level %d, want 0..%d", maxLevel, MaxLevel)
	case rows > 0 && uint64(enter) >= uint64(rows):
		return bad("entry point %d of %d rows", enter, rows)
	case !(mult > 0) || math.IsInf(mult, 0):
		return bad("level multiplier %v", mult)
	case efc < 1 || efc > MaxEfConstruction:
		return bad("efConstruction %d, want 1..%d", efc, MaxEfConstruction)
	}
	level0 := uint64(headerBytes) + count*sizePerElement
	if uint64(len(raw)) < level0 {
		return bad("%d bytes, its %d elements need %d", len(raw), count, level0)
	}
	// Level 0: each element's neighbour list, its vector, its label (the
	// labels: each row position once).
	seen := make([]bool, count)
	for i := uint64(0); i < count; i++ {
		el := raw[uint64(headerBytes)+i*sizePerElement:][:sizePerElement]
		if err := checkLinks(el, maxM0, count); err != nil {
			return bad("element %d, level 0: %v", i, err)
		}
		label := le.Uint64(el[labelOffset:])
		if label >= count || seen[label] {
			return bad("element %d is labelled %d: not a row, or a row twice", i, label)
		}
		seen[label] = true
	}
	// The upper levels: a list per element, of whole levels. First each
	// element's levels, then the lists: a neighbour on level l must have a
	// list of level l itself (hnswlib reads it there).
	perLevel := maxM*4 + 4
	levels := make([]uint8, count)
	starts := make([]uint64, count)
	off := level0
	for i := uint64(0); i < count; i++ {
		if uint64(len(raw)) < off+4 {
			return bad("cut short in element %d's upper levels", i)
		}
		size := uint64(le.Uint32(raw[off:]))
		off += 4
		if size%perLevel != 0 || size/perLevel > uint64(maxLevel) {
			return bad("element %d: %d bytes of upper levels, not at most %d levels of %d bytes", i, size, maxLevel, perLevel)
		}
		if uint64(len(raw)) < off+size {
			return bad("cut short in element %d's upper levels", i)
		}
		if i == uint64(enter) && size/perLevel != uint64(maxLevel) {
			return bad("the entry point, element %d, has %d levels above 0, the top level is %d", i, size/perLevel, maxLevel)
		}
		levels[i], starts[i] = uint8(size/perLevel), off
		off += size
	}
	if off != uint64(len(raw)) {
		return bad("%d bytes after the last element", uint64(len(raw))-off)
	}
	for i := uint64(0); i < count; i++ {
		for l := uint64(1); l <= uint64(levels[i]); l++ {
			b := raw[starts[i]+(l-1)*perLevel:][:perLevel]
			if err := checkLinks(b, maxM, count); err != nil {
				return bad("element %d, level %d: %v", i, l, err)
			}
			for j := uint64(0); j < uint64(le.Uint16(b)); j++ {
				if id := le.Uint32(b[4+4*j:]); uint64(levels[id]) < l {
					return bad("element %d, level %d: neighbour %d has no level %d", i, l, id, l)
				}
			}
		}
	}
	return &Header{Rows: rows, Dim: dim, M: int(m), EfConstruction: int(efc), MaxLevel: int(maxLevel)}, nil
}

// checkLinks checks one neighbour list: a count (hnswlib keeps it in the
// low two bytes of a uint32) of at most max, each neighbour below rows.
func checkLinks(b []byte, max, rows uint64) error {
	n := uint64(binary.LittleEndian.Uint16(b))
	if n > max {
		return fmt.Errorf("%d neighbours, at most %d", n, max)
	}
	for j := uint64(0); j < n; j++ {
		if id := uint64(binary.LittleEndian.Uint32(b[4+4*j:])); id >= rows {
			return fmt.Errorf("neighbour %d of %d rows", id, rows)
		}
	}
	return nil
}

// Load checks raw (Check) and gives the index it holds.
func Load(raw []byte, rows, dim int) (*Index, error) {
	if _, err := Check(raw, rows, dim); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "infomax-hnsw-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "index")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return nil, err
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var e *C.char
	c := C.hnsw_load(cpath, C.int(dim), &e)
	if c == nil {
		return nil, cerr(e)
	}
	return &Index{c: c, dim: dim, n: rows}, nil
}
