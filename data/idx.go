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

// openMaybeGzip opens path and undoes gzip if the file starts with its magic.
func openMaybeGzip(path string) (io.Reader, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	head, _ := br.Peek(2)
	if bytes.Equal(head, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return zr, f.Close, nil
	}
	return br, f.Close, nil
}

// readIDX reads an IDX file of uint8 with the given magic; returns the
// dimensions and the data.
func readIDX(path string, magic uint32) ([]int, []byte, error) {
	r, closeFn, err := openMaybeGzip(path)
	if err != nil {
		return nil, nil, err
	}
	defer closeFn()
	var head uint32
	if err := binary.Read(r, binary.BigEndian, &head); err != nil {
		return nil, nil, fmt.Errorf("%s: reading the IDX header: %w (truncated or corrupt)", path, err)
	}
	if head != magic {
		return nil, nil, fmt.Errorf("%s: IDX magic number 0x%08x, want 0x%08x (a uint8 file of %d dimensions)", path, head, magic, magic&0xff)
	}
	dims := make([]int, magic&0xff)
	total := 1
	for i := range dims {
		var d uint32
		if err := binary.Read(r, binary.BigEndian, &d); err != nil {
			return nil, nil, fmt.Errorf("%s: reading the IDX header: %w (truncated or corrupt)", path, err)
		}
		dims[i] = int(d)
		total *= int(d)
	}
	buf := make([]byte, total)
	if n, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("%s: the header promises %v = %d bytes, the file ends after %d: truncated", path, dims, total, n)
		}
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	// Read to the end: a gzip stream is checked (CRC, length) only there.
	extra, err := io.Copy(io.Discard, r)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w (truncated or corrupt)", path, err)
	}
	if extra > 0 {
		return nil, nil, fmt.Errorf("%s: %d bytes after the %v the header promises", path, extra, dims)
	}
	return dims, buf, nil
}

// ReadIDXPair reads an images file [N,H,W] and a labels file [N] into a Set
// of greyscale images, checking labels against the class count.
func ReadIDXPair(imagesPath, labelsPath string, classes int) (*Set, error) {
	dims, pixels, err := readIDX(imagesPath, idxImages)
	if err != nil {
		return nil, err
	}
	ldims, labels, err := readIDX(labelsPath, idxLabels)
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
