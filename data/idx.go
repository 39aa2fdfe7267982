package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/infomax/infomax/internal/fsutil"
)

// IDX magic numbers: two zero bytes, the element type (0x08: uint8) and the
// number of dimensions.
const (
	idxImages = 0x00000803
	idxLabels = 0x00000801
)

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// readIDX reads an IDX file of uint8 with the given magic, gzipped or not;
// returns the dimensions and the data.
func readIDX(path string, magic uint32, lim Limits) ([]int, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	dims, buf, err := decodeIDX(bufio.NewReaderSize(f, 1<<20), fi.Size(), magic, lim)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return dims, buf, nil
}

// decodeIDX reads an IDX stream of size bytes (gzipped if it starts with
// gzip's magic). What the header promises is checked against what the file
// can hold before anything is allocated: exactly its size less the header
// for a plain file, lim's inflation bound of it for a gzipped one.
func decodeIDX(br *bufio.Reader, size int64, magic uint32, lim Limits) ([]int, []byte, error) {
	var r io.Reader = br
	head, _ := br.Peek(2)
	gz := bytes.Equal(head, []byte{0x1f, 0x8b})
	if gz {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		r = zr
	}
	var m uint32
	if err := binary.Read(r, binary.BigEndian, &m); err != nil {
		return nil, nil, fmt.Errorf("reading the IDX header: %w (truncated or corrupt)", err)
	}
	if m != magic {
		return nil, nil, fmt.Errorf("IDX magic number 0x%08x, want 0x%08x (a uint8 file of %d dimensions)", m, magic, magic&0xff)
	}
	dims := make([]int, magic&0xff)
	total := int64(1)
	for i := range dims {
		var d uint32
		if err := binary.Read(r, binary.BigEndian, &d); err != nil {
			return nil, nil, fmt.Errorf("reading the IDX header: %w (truncated or corrupt)", err)
		}
		dims[i] = int(d)
		// Checked before multiplying: the product of four uint32 overflows int64.
		if d != 0 && total > (1<<40)/int64(d) {
			return nil, nil, fmt.Errorf("the header promises %v: more than any file holds", dims[:i+1])
		}
		total *= int64(d)
	}
	headLen := int64(4 + 4*len(dims))
	switch {
	case !gz && total > size-headLen:
		return nil, nil, fmt.Errorf("the header promises %v = %d bytes, the file ends after %d: truncated", dims, total, max(0, size-headLen))
	case !gz && total < size-headLen:
		return nil, nil, fmt.Errorf("%d bytes after the %v the header promises", size-headLen-total, dims)
	case gz && total > lim.inflated(size):
		return nil, nil, fmt.Errorf("the header promises %v = %d bytes, more than this %d-byte gzip file may inflate to (%d; data.max_inflate_ratio): %w",
			dims, total, size, lim.inflated(size), ErrTooLarge)
	}
	buf := make([]byte, total)
	if n, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("the header promises %v = %d bytes, the file ends after %d: truncated", dims, total, n)
		}
		return nil, nil, err
	}
	// Read to the end: a gzip stream is checked (CRC, length) only there.
	extra, err := io.Copy(io.Discard, io.LimitReader(r, 1<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("%w (truncated or corrupt)", err)
	}
	if extra > 0 {
		return nil, nil, fmt.Errorf("%d bytes after the %v the header promises", extra, dims)
	}
	return dims, buf, nil
}

// ReadIDXPair reads an images file [N,H,W] and a labels file [N] into a Set
// of greyscale images, checking labels against the class count.
func ReadIDXPair(imagesPath, labelsPath string, classes int, lim Limits) (*Set, error) {
	dims, pixels, err := readIDX(imagesPath, idxImages, lim)
	if err != nil {
		return nil, err
	}
	ldims, labels, err := readIDX(labelsPath, idxLabels, lim)
	if err != nil {
		return nil, err
	}
	if ldims[0] != dims[0] {
		return nil, fmt.Errorf("%s has %d labels but %s has %d images", labelsPath, ldims[0], imagesPath, dims[0])
	}
	s := &Set{Images: pixels, Labels: make([]int, len(labels)), H: dims[1], W: dims[2], C: 1, Source: imagesPath}
	for i, l := range labels {
		if int(l) >= classes {
			return nil, fmt.Errorf("%s: label %d of image %d is out of range (%d classes)", labelsPath, l, i, classes)
		}
		s.Labels[i] = int(l)
	}
	return s, nil
}

// WriteIDX writes an IDX file of uint8 (magic 0x0801 labels, 0x0803 images)
// with the given dimensions, gzipped when path ends in .gz, atomically.
func WriteIDX(path string, magic uint32, dims []int, payload []byte) error {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, magic)
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, uint32(d))
	}
	b.Write(payload)
	out := b.Bytes()
	if filepath.Ext(path) == ".gz" {
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		w.Write(out)
		w.Close()
		out = z.Bytes()
	}
	if err := fsutil.WriteFileAtomic(path, out); err != nil {
		return fmt.Errorf("write IDX: %w", err)
	}
	return nil
}
