package encoder_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/encoder"
	"github.com/infomax/infomax/internal/memstat"
	"github.com/infomax/infomax/testkit/hostile"
	"github.com/infomax/infomax/testkit/testmodel"
)

// load opens the test model's run folder (an untrained checkpoint).
func load(t *testing.T, opts ...encoder.Option) *encoder.Encoder {
	t.Helper()
	runDir, err := testmodel.Run(filepath.Join(t.TempDir(), "run"))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := encoder.Load(t.Context(), runDir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enc.Close() })
	return enc
}

// grey is a 28×28 grey test image, different for each seed.
func grey(seed int) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, 28, 28))
	for i := range g.Pix {
		g.Pix[i] = uint8(i*7 + seed*31)
	}
	return g
}

func pngBytes(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func same(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: value %d is %v, want %v", what, i, got[i], want[i])
		}
	}
}

// EncodeFiles, EncodeBytes and EncodeReader give the features EncodeImages
// gives for the same pictures, and a file whose header claims a huge image
// is refused, named, without allocating what it claims.
func TestEncodeFilesAndHostileFiles(t *testing.T) {
	enc := load(t)
	ctx := t.Context()
	tmp := t.TempDir()
	g := grey(0)
	good := filepath.Join(tmp, "good.png")
	os.WriteFile(good, pngBytes(t, g), 0o644)
	fromImage, err := enc.EncodeImages(ctx, []image.Image{g})
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := enc.EncodeFiles(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "EncodeFiles", fromFile, fromImage)
	fromBytes, err := enc.EncodeBytes(ctx, pngBytes(t, g))
	if err != nil {
		t.Fatal(err)
	}
	same(t, "EncodeBytes", fromBytes, fromImage)
	fromReader, err := enc.EncodeReader(ctx, bytes.NewReader(pngBytes(t, g)))
	if err != nil {
		t.Fatal(err)
	}
	same(t, "EncodeReader", fromReader, fromImage)

	for name, raw := range map[string][]byte{
		"huge.png": hostile.PNG(100_000, 100_000), "huge.jpg": hostile.JPEG(65535, 65535),
		"huge.gif": hostile.GIF(65535, 65535), "huge.bmp": hostile.BMP(100_000, 100_000), "huge.webp": hostile.WebP(40_000, 40_000),
	} {
		p := filepath.Join(tmp, name)
		os.WriteFile(p, raw, 0o644)
		before := memstat.PeakMiB()
		_, err := enc.EncodeFiles(ctx, good, p)
		var bad data.BadImage
		if !errors.Is(err, data.ErrTooLarge) || !errors.As(err, &bad) || bad.Path != p {
			t.Errorf("%s: %v, want data.ErrTooLarge in a data.BadImage naming the file", name, err)
		}
		if grew := memstat.PeakMiB() - before; grew > 256 {
			t.Errorf("%s: peak memory grew by %.0f MiB", name, grew)
		}
	}
}

// The limits are the run's, and the caller's to change at Load.
func TestWithLimits(t *testing.T) {
	lim := data.Limits{MaxPixels: 28*28 - 1}
	enc := load(t, encoder.WithLimits(lim))
	if _, err := enc.EncodeBytes(t.Context(), pngBytes(t, grey(0))); !errors.Is(err, data.ErrTooLarge) {
		t.Errorf("28×28 over a limit of 783 pixels: %v", err)
	}
}

// EncodeFilesSkipBad leaves out the files that fail and says why, each a
// data.BadImage; the rows it keeps are the features of the good files.
func TestEncodeFilesSkipBad(t *testing.T) {
	enc := load(t)
	ctx := t.Context()
	tmp := t.TempDir()
	var paths []string
	var goods []image.Image
	for i := 0; i < 5; i++ {
		p := filepath.Join(tmp, fmt.Sprintf("%d.png", i))
		switch i {
		case 1:
			os.WriteFile(p, []byte("not an image"), 0o644)
		case 3:
			os.WriteFile(p, hostile.PNG(100_000, 100_000), 0o644)
		default:
			goods = append(goods, grey(i))
			os.WriteFile(p, pngBytes(t, grey(i)), 0o644)
		}
		paths = append(paths, p)
	}
	paths = append(paths, filepath.Join(tmp, "missing.png"))
	res, err := enc.EncodeFilesSkipBad(ctx, paths...)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Kept) != "[0 2 4]" || len(res.Bad) != 3 {
		t.Fatalf("kept %v, bad %v", res.Kept, res.Bad)
	}
	for i, want := range []int{1, 3, 5} {
		var bad data.BadImage
		if !errors.As(error(res.Bad[i]), &bad) || bad.Path != paths[want] {
			t.Errorf("bad %d: %v, want %s", i, res.Bad[i], paths[want])
		}
	}
	if !errors.Is(res.Bad[1], data.ErrTooLarge) || !errors.Is(res.Bad[2], os.ErrNotExist) {
		t.Errorf("reasons: %v, %v", res.Bad[1].Err, res.Bad[2].Err)
	}
	want, err := enc.EncodeImages(ctx, goods)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "the kept rows", res.Features, want)
	// Without skipping, the first bad file is the error.
	if _, err := enc.EncodeFiles(ctx, paths...); err == nil || !strings.Contains(err.Error(), paths[1]) {
		t.Errorf("EncodeFiles with bad files: %v, want an error naming %s", err, paths[1])
	}
}

// Bad calls are errors, never panics: a nil image, pixels of another
// channel count (28×28×3 bytes for a 28×28×1 model is three images' worth,
// which EncodePixels once encoded as three rows).
func TestBadCallsAreErrors(t *testing.T) {
	enc := load(t)
	ctx := t.Context()
	if _, err := enc.EncodeImages(ctx, []image.Image{grey(0), nil}); err == nil || !strings.Contains(err.Error(), "image 1 of 2 is nil") {
		t.Errorf("nil image: %v", err)
	}
	if _, err := enc.EncodeImages(ctx, []image.Image{image.NewGray(image.Rect(0, 0, 0, 0))}); err == nil {
		t.Error("empty image accepted")
	}
	rgb := make([]byte, 28*28*3)
	if feats, err := enc.EncodePixels(ctx, rgb, 1); err == nil || !strings.Contains(err.Error(), "2352 bytes for 1 images of 28x28x1") {
		t.Errorf("one 28×28 RGB image for a grey model: %d features, %v", len(feats), err)
	}
	if _, err := enc.EncodePixels(ctx, rgb, 3); err != nil {
		t.Errorf("three grey images: %v", err)
	}
	if f, err := enc.EncodePixels(ctx, nil, 0); err != nil || len(f) != 0 {
		t.Errorf("no images: %v, %v", f, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := enc.EncodePixels(cancelled, rgb, 3); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// One Encoder serves many goroutines at once (go test -race checks the
// sharing), each getting what it would get alone; Close waits for the calls
// in progress, later calls get ErrClosed, and a second Close is harmless.
func TestConcurrentUse(t *testing.T) {
	enc := load(t, encoder.WithBatchSize(4))
	ctx := t.Context()
	const workers, per = 8, 10
	var imgs [workers][]image.Image
	want := make([][]float32, workers)
	for w := range workers {
		for i := range per {
			imgs[w] = append(imgs[w], grey(w*per+i))
		}
		var err error
		if want[w], err = enc.EncodeImages(ctx, imgs[w]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	got := make([][]float32, workers)
	errs := make([]error, workers)
	for round := 0; round < 3; round++ {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				files := make([][]byte, per)
				for i, img := range imgs[w] {
					files[i] = pngBytes(t, img)
				}
				got[w], errs[w] = enc.EncodeBytes(ctx, files...)
			}()
		}
		wg.Wait()
		for w := range workers {
			if errs[w] != nil {
				t.Fatal(errs[w])
			}
			same(t, fmt.Sprintf("round %d, goroutine %d", round, w), got[w], want[w])
		}
	}

	// Close while goroutines encode: each call either finishes or gets
	// ErrClosed.
	start := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < 5; i++ {
				if _, err := enc.EncodeImages(ctx, imgs[w]); err != nil && !errors.Is(err, encoder.ErrClosed) {
					errs[w] = err
				}
			}
		}()
	}
	close(start)
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("during Close: %v", err)
		}
	}
	if _, err := enc.EncodeImages(ctx, imgs[0]); !errors.Is(err, encoder.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
	if err := enc.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// WithFeatures: Conv gives the model's last convolutional map, flattened
// (h·w·c values, as graph's encode_conv gives it), ConvAvg its mean over
// the h×w positions (checked here against the mean of Conv's rows, summed
// in float64), both through every Encode method, batch by batch; another
// name is refused, naming the choices.
func TestConvFeatures(t *testing.T) {
	ctx := t.Context()
	runDir, err := testmodel.Run(filepath.Join(t.TempDir(), "run"))
	if err != nil {
		t.Fatal(err)
	}
	open := func(opts ...encoder.Option) *encoder.Encoder {
		enc, err := encoder.Load(ctx, runDir, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { enc.Close() })
		return enc
	}
	z := open()
	conv := open(encoder.WithFeatures(encoder.Conv), encoder.WithBatchSize(3))
	avg := open(encoder.WithFeatures(encoder.ConvAvg), encoder.WithBatchSize(3))
	if z.Feature != encoder.ZMean || conv.Feature != encoder.Conv || avg.Feature != encoder.ConvAvg {
		t.Errorf("features %q %q %q", z.Feature, conv.Feature, avg.Feature)
	}
	c := avg.Dim()
	if c < 1 || conv.Dim()%c != 0 || conv.Dim() <= c {
		t.Fatalf("dimensions: z_mean %d, conv %d, conv_avg %d", z.Dim(), conv.Dim(), c)
	}
	imgs := []image.Image{grey(1), grey(2), grey(3), grey(4), grey(5), grey(6), grey(7)}
	maps, err := conv.EncodeImages(ctx, imgs)
	if err != nil {
		t.Fatal(err)
	}
	means, err := avg.EncodeImages(ctx, imgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != len(imgs)*conv.Dim() || len(means) != len(imgs)*c {
		t.Fatalf("%d and %d values for %d images", len(maps), len(means), len(imgs))
	}
	hw := conv.Dim() / c
	for i := range imgs {
		for k := range c {
			var sum float64
			for p := range hw {
				sum += float64(maps[i*conv.Dim()+p*c+k])
			}
			if want := float32(sum / float64(hw)); means[i*c+k] != want {
				t.Fatalf("image %d, channel %d: conv_avg %v, the mean of conv's %d positions %v", i, k, means[i*c+k], hw, want)
			}
		}
	}
	// The same images one by one: the same maps (batches differ only in
	// their size).
	one, err := conv.EncodeFiles(ctx, writePNG(t, imgs[4]))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range one {
		if d := v - maps[4*conv.Dim()+k]; d > 1e-5 || d < -1e-5 {
			t.Fatalf("image 4 alone: value %d is %v, in a batch %v", k, v, maps[4*conv.Dim()+k])
		}
	}
	if _, err := encoder.Load(ctx, runDir, encoder.WithFeatures("conv_max")); err == nil || !strings.Contains(err.Error(), "z_mean, conv, conv_avg") {
		t.Errorf("features conv_max: %v", err)
	}
}

func writePNG(t *testing.T, img image.Image) string {
	p := filepath.Join(t.TempDir(), "x.png")
	if err := os.WriteFile(p, pngBytes(t, img), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
