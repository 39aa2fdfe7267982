package data

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	_ "golang.org/x/image/bmp"
	xdraw "golang.org/x/image/draw"
	_ "golang.org/x/image/webp"
)

// imageExts are the file endings read as images (case-insensitive).
var imageExts = []string{".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"}

// IsImage reports whether a file name has an image ending (JPEG, PNG, GIF,
// BMP, WebP; case-insensitive).
func IsImage(name string) bool { return isImage(name) }

// ImageExtensions are the file name extensions of the images the loaders read.
func ImageExtensions() []string { return slices.Clone(imageExts) }

func isImage(name string) bool {
	low := strings.ToLower(name)
	for _, e := range imageExts {
		if strings.HasSuffix(low, e) {
			return true
		}
	}
	return false
}

// Shape is the model's input: every image becomes H×W×C uint8.
type Shape struct{ H, W, C int }

func (s Shape) bytes() int { return s.H * s.W * s.C }

// check refuses a channel count the loaders cannot produce.
func (s Shape) check() error {
	if s.C != 1 && s.C != 3 {
		return fmt.Errorf("data: %d channels: want 1 or 3", s.C)
	}
	return nil
}

// DecodeInto decodes an encoded image (JPEG, PNG, GIF, BMP, WebP) into dst,
// which holds s.bytes() bytes. Any colour model (grey, palette, 16-bit,
// alpha, CMYK) becomes RGB for C = 3 or luminance for C = 1; transparent
// pixels become black. An image of another size is resized with a Catmull-Rom
// filter, which averages over the source pixels when it shrinks
// (antialiasing). It reports whether it resized. The header is checked against
// lim before any pixel is decoded (a zero Limits: the defaults).
func DecodeInto(dst []byte, encoded []byte, s Shape, lim Limits) (resized bool, err error) {
	if err := lim.checkHeader(encoded); err != nil {
		return false, err
	}
	img, _, err := image.Decode(bytes.NewReader(encoded))
	if err != nil {
		return false, err
	}
	return ImageInto(dst, img, s), nil
}

// ImageInto writes a decoded image into dst as DecodeInto does.
func ImageInto(dst []byte, img image.Image, s Shape) (resized bool) {
	b := img.Bounds()
	resized = b.Dx() != s.W || b.Dy() != s.H
	rect := image.Rect(0, 0, s.W, s.H)
	put := func(d draw.Image) {
		if resized {
			xdraw.CatmullRom.Scale(d, rect, img, b, xdraw.Src, nil)
		} else {
			draw.Draw(d, rect, img, b.Min, draw.Src)
		}
	}
	if s.C == 1 {
		g := &image.Gray{Pix: dst[:s.bytes()], Stride: s.W, Rect: rect}
		put(g)
		return resized
	}
	rgba := image.NewRGBA(rect)
	put(rgba)
	for i, j := 0, 0; i < len(rgba.Pix); i, j = i+4, j+3 {
		dst[j], dst[j+1], dst[j+2] = rgba.Pix[i], rgba.Pix[i+1], rgba.Pix[i+2]
	}
	return resized
}

// BadImage is an image that could not be decoded.
type BadImage struct {
	Path string
	Err  error
}

func (b BadImage) Error() string { return fmt.Sprintf("%s: %v", b.Path, b.Err) }

func (b BadImage) Unwrap() error { return b.Err }

// decodeJob decodes n images, read by read(i), into one array, on every core.
type decodeJob struct {
	n     int
	read  func(i int) ([]byte, error)
	where func(i int) string
	shape Shape
	lim   Limits
}

// run returns the pixels, the indices that failed (in order) and how many
// images were resized. It stops at the first failure unless keepGoing.
func (j decodeJob) run(keepGoing bool) (pixels []byte, bad []BadImage, badIdx []int, resized int, err error) {
	per := j.shape.bytes()
	pixels = make([]byte, j.n*per)
	var next, nResized atomic.Int64
	var stop atomic.Bool
	var mu sync.Mutex
	failed := map[int]error{}
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				i := int(next.Add(1) - 1)
				if i >= j.n {
					return
				}
				raw, err := j.read(i)
				var r bool
				if err == nil {
					r, err = DecodeInto(pixels[i*per:(i+1)*per], raw, j.shape, j.lim)
				}
				if err != nil {
					mu.Lock()
					failed[i] = err
					mu.Unlock()
					if !keepGoing {
						stop.Store(true)
					}
					continue
				}
				if r {
					nResized.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	for i := 0; i < j.n; i++ {
		if e, ok := failed[i]; ok {
			bad = append(bad, BadImage{Path: j.where(i), Err: e})
			badIdx = append(badIdx, i)
		}
	}
	if len(bad) > 0 && !keepGoing {
		return nil, nil, nil, 0, fmt.Errorf("%w (pass --skip-bad to leave such images out)", bad[0])
	}
	return pixels, bad, badIdx, int(nResized.Load()), nil
}

// DecodeAll decodes n encoded images (read(i) gives the bytes of image i,
// where(i) names it) into one array of shape s, on every core, each header
// checked against lim first. With keepGoing, images that fail are left out:
// kept lists the indices of the images in pixels, bad the others, in order;
// without, the first failure is the error (a BadImage).
func DecodeAll(n int, read func(i int) ([]byte, error), where func(i int) string, s Shape, lim Limits, keepGoing bool) (pixels []byte, kept []int, bad []BadImage, err error) {
	pixels, bad, badIdx, _, err := decodeJob{n: n, read: read, where: where, shape: s, lim: lim}.run(keepGoing)
	if err != nil {
		return nil, nil, nil, err
	}
	kept = make([]int, n)
	for i := range kept {
		kept[i] = i
	}
	pixels, kept = dropIndices(pixels, kept, s.bytes(), badIdx)
	return pixels, kept, bad, nil
}

// dropIndices removes the given sorted indices from pixels and labels.
func dropIndices(pixels []byte, labels []int, per int, drop []int) ([]byte, []int) {
	if len(drop) == 0 {
		return pixels, labels
	}
	out, outLabels := pixels[:0], labels[:0]
	d := 0
	for i := range labels {
		if d < len(drop) && drop[d] == i {
			d++
			continue
		}
		out = append(out, pixels[i*per:(i+1)*per]...)
		outLabels = append(outLabels, labels[i])
	}
	return out, outLabels
}
