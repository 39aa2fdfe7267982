package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
)

// Limits bound what one file handed to the loaders may make them allocate or
// inflate, so that no file (an image whose header claims 100,000 × 100,000
// pixels, an archive member that inflates to gigabytes, a header that claims
// more than its file holds) can exhaust memory. A zero field takes its
// default. The config's data.max_* keys set them.
type Limits struct {
	// MaxPixels bounds width × height of one image, read from its header
	// before any pixel is decoded (default 100 megapixels, about Pillow's
	// decompression-bomb threshold; decoding one that size takes ~400 MB).
	MaxPixels int64
	// MaxSide bounds either side of an image (default 50,000 pixels).
	MaxSide int
	// MaxFileBytes bounds one file or archive member that is read whole: an
	// image, a CIFAR-10 batch, a label file (default 256 MiB).
	MaxFileBytes int64
	// MaxInflation bounds what a compressed file or archive may inflate to:
	// this many times its own size, plus MaxFileBytes or 64 MiB, whichever
	// is less (default 20; archives of images inflate by about 1×, IDX files
	// by about 5×, zip bombs by 1,000×).
	MaxInflation float64
}

// Defaults of Limits.
const (
	DefaultMaxPixels    = 100_000_000
	DefaultMaxSide      = 50_000
	DefaultMaxFileBytes = 256 << 20
	DefaultMaxInflation = 20
	inflationSlack      = 64 << 20
)

// ErrTooLarge marks a file refused by Limits.
var ErrTooLarge = errors.New("refused as too large")

func (l Limits) orDefaults() Limits {
	if l.MaxPixels <= 0 {
		l.MaxPixels = DefaultMaxPixels
	}
	if l.MaxSide <= 0 {
		l.MaxSide = DefaultMaxSide
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultMaxFileBytes
	}
	if l.MaxInflation <= 0 {
		l.MaxInflation = DefaultMaxInflation
	}
	return l
}

// inflated is the most a compressed input of size bytes may inflate to.
func (l Limits) inflated(size int64) int64 {
	l = l.orDefaults()
	return int64(l.MaxInflation*float64(size)) + min(inflationSlack, l.MaxFileBytes)
}

// tooLarge is the error for size bytes read whole past MaxFileBytes.
func (l Limits) tooLarge(size int64) error {
	return fmt.Errorf("%d bytes, over the limit of %d (data.max_file_mib): %w", size, l.MaxFileBytes, ErrTooLarge)
}

// checkHeader reads an encoded image's header (image.DecodeConfig: no pixels
// are decoded) and refuses one whose size is over the limits.
func (l Limits) checkHeader(encoded []byte) error {
	l = l.orDefaults()
	if int64(len(encoded)) > l.MaxFileBytes {
		return l.tooLarge(int64(len(encoded)))
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(encoded))
	if err != nil {
		return err
	}
	w, h := cfg.Width, cfg.Height
	switch {
	case w <= 0 || h <= 0:
		return fmt.Errorf("%s header claims %d×%d pixels: no image", format, w, h)
	case w > l.MaxSide || h > l.MaxSide:
		return fmt.Errorf("%s header claims %d×%d pixels, over the limit of %d per side (data.max_image_side): %w", format, w, h, l.MaxSide, ErrTooLarge)
	case int64(w)*int64(h) > l.MaxPixels:
		return fmt.Errorf("%s header claims %d×%d pixels (%.1f megapixels), over the limit of %.1f (data.max_image_pixels): %w",
			format, w, h, float64(w)*float64(h)/1e6, float64(l.MaxPixels)/1e6, ErrTooLarge)
	}
	return nil
}

// readAllLimited reads r to its end, refusing more than max bytes; what names
// the input in the error.
func readAllLimited(r io.Reader, max int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: more than %d bytes: %w", what, max, ErrTooLarge)
	}
	return b, nil
}

// ReadAll reads one file or member from r whole, refusing more than
// MaxFileBytes (data.max_file_mib) without reading past it; what names it in
// the error.
func (l Limits) ReadAll(r io.Reader, what string) ([]byte, error) {
	l = l.orDefaults()
	b, err := readAllLimited(r, l.MaxFileBytes, what)
	if errors.Is(err, ErrTooLarge) {
		err = fmt.Errorf("%w (data.max_file_mib)", err)
	}
	return b, err
}

// readFile reads a file whole after checking its size against MaxFileBytes.
func (l Limits) readFile(path string) ([]byte, error) {
	l = l.orDefaults()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > l.MaxFileBytes {
		return nil, fmt.Errorf("%s: %w", path, l.tooLarge(fi.Size()))
	}
	return l.ReadAll(f, path)
}
