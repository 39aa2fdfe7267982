// Package npy writes and reads NumPy's .npy files.
//
// Package npy writes and reads NumPy's .npy files (format 1.0): the
// features and labels of evaluations and of the embedding pipeline's shards.
package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/infomax/infomax/internal/fsutil"
)

// Write writes a row-major float32, int32 or uint8 array as a NumPy .npy
// file (format 1.0) that numpy.load reads unchanged. (npyio, the Go library
// for the format, writes float32 arrays of a run-time shape only as 1-D.)
func Write[T float32 | int32 | uint8](path string, data []T, shape ...int) error {
	b, err := Encode(data, shape...)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return fsutil.WriteFileAtomic(path, b)
}

// Encode is the bytes of the .npy file Write writes.
func Encode[T float32 | int32 | uint8](data []T, shape ...int) ([]byte, error) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	if n != len(data) {
		return nil, fmt.Errorf("shape %v holds %d values, got %d", shape, n, len(data))
	}
	descr := "<f4"
	switch any(data).(type) {
	case []int32:
		descr = "<i4"
	case []uint8:
		descr = "|u1"
	}
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = fmt.Sprint(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, tuple)
	// Magic (6) + version (2) + length (2) + header + newline, padded to 64 bytes.
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad%64) + "\n"
	var buf bytes.Buffer
	buf.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&buf, binary.LittleEndian, uint16(len(header)))
	buf.WriteString(header)
	if err := binary.Write(&buf, binary.LittleEndian, data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var npyShape = regexp.MustCompile(`'shape': \((\d+), (\d+)\)`)

// ReadFloat32Rows reads a little-endian float32 [n, dim] .npy file, checking
// its header against the file's size before allocating.
func ReadFloat32Rows(path string, dim int) ([]float32, int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	return ParseFloat32Rows(raw, path, dim)
}

// ParseFloat32Rows reads the bytes of a float32 [n, dim] .npy file; path
// names it in errors.
func ParseFloat32Rows(raw []byte, path string, dim int) ([]float32, int, error) {
	bad := func(why string) ([]float32, int, error) { return nil, 0, fmt.Errorf("%s: %s", path, why) }
	if len(raw) < 10 || !bytes.HasPrefix(raw, []byte("\x93NUMPY\x01\x00")) {
		return bad("not a version-1 .npy file")
	}
	hl := int(binary.LittleEndian.Uint16(raw[8:10]))
	if 10+hl > len(raw) {
		return bad("header cut short")
	}
	header := string(raw[10 : 10+hl])
	m := npyShape.FindStringSubmatch(header)
	if m == nil || !strings.Contains(header, "'descr': '<f4'") || !strings.Contains(header, "'fortran_order': False") {
		return bad("want a C-order float32 [n, dim] array")
	}
	n, err1 := strconv.Atoi(m[1])
	d, err2 := strconv.Atoi(m[2])
	body := raw[10+hl:]
	if err := errors.Join(err1, err2); err != nil || d != dim || n < 0 || len(body) != 4*n*d {
		return bad(fmt.Sprintf("shape (%s, %s) with %d bytes of data, want dimension %d", m[1], m[2], len(body), dim))
	}
	out := make([]float32, n*d)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
	}
	return out, n, nil
}
