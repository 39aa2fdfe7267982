package eval

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/infomax/infomax/internal/fsutil"
)

// WriteNPY writes a row-major float32, int32 or uint8 array as a NumPy .npy
// file (format 1.0) that numpy.load reads unchanged. (npyio, the Go library
// for the format, writes float32 arrays of a run-time shape only as 1-D.)
func WriteNPY[T float32 | int32 | uint8](path string, data []T, shape ...int) error {
	n := 1
	for _, d := range shape {
		n *= d
	}
	if n != len(data) {
		return fmt.Errorf("write %s: shape %v holds %d values, got %d", path, shape, n, len(data))
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
		return err
	}
	return fsutil.WriteFileAtomic(path, buf.Bytes())
}
