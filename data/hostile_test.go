package data

import (
	"bytes"
	"context"
	"errors"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/infomax/infomax/internal/memstat"
	"github.com/infomax/infomax/testkit/hostile"
)

// hugeHeaders are images whose headers claim far more pixels than the
// limits allow, one per format; none holds a single pixel.
func hugeHeaders() map[string][]byte {
	return map[string][]byte{
		"png 100000x100000": hostile.PNG(100_000, 100_000),
		"jpeg 65535x65535":  hostile.JPEG(65535, 65535),
		"gif 65535x65535":   hostile.GIF(65535, 65535),
		"bmp 100000x100000": hostile.BMP(100_000, 100_000),
		"webp 40000x40000":  hostile.WebP(40_000, 40_000),
		"png 60000x10":      hostile.PNG(60_000, 10), // few pixels, one side too long
		"png 20000x20000":   hostile.PNG(20_000, 20_000),
	}
}

func TestHugeImageHeadersAreRefusedBeforeDecoding(t *testing.T) {
	for name, raw := range hugeHeaders() {
		var err error
		grew := memstat.PeakGrowth(func() { _, err = DecodeInto(make([]byte, 8*8*3), raw, Shape{8, 8, 3}, Limits{}) })
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "header claims") {
			t.Errorf("%s: %v, want a header-size error", name, err)
		}
		if grew > 64 {
			t.Errorf("%s: peak memory grew by %.0f MiB", name, grew)
		}
		t.Logf("%s: %v (peak +%.0f MiB)", name, err, grew)
	}
	// The limits are settings: a small image passes a small limit, fails a smaller one.
	img := encodePNG(solid(40, 30, color.White))
	if _, err := DecodeInto(make([]byte, 8*8*3), img, Shape{8, 8, 3}, Limits{MaxPixels: 1200}); err != nil {
		t.Errorf("40x30 within 1200 pixels: %v", err)
	}
	if _, err := DecodeInto(make([]byte, 8*8*3), img, Shape{8, 8, 3}, Limits{MaxPixels: 1199}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("40x30 over 1199 pixels: %v", err)
	}
	if _, err := DecodeInto(make([]byte, 8*8*3), img, Shape{8, 8, 3}, Limits{MaxSide: 39}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("40x30 over 39 a side: %v", err)
	}
}

// A folder holding one huge-header image among good ones: an error naming it,
// or with skipBad a skip that is counted and named.
func TestHugeImageInAFolder(t *testing.T) {
	fs := files{"a.png": encodePNG(solid(8, 8, color.White)), "b.jpg": encodeJPEG(solid(8, 8, color.Black)), "huge.png": hostile.PNG(100_000, 100_000)}
	dir := fs.writeDir(t)
	_, err := ReadImages(dir, Shape{8, 8, 3}, false, Limits{})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "huge.png") || !strings.Contains(err.Error(), "--skip-bad") {
		t.Errorf("strict: %v", err)
	}
	imgs, err := ReadImages(dir, Shape{8, 8, 3}, true, Limits{})
	if err != nil || len(imgs.Paths) != 2 || len(imgs.Bad) != 1 || !strings.Contains(imgs.Bad[0].Path, "huge.png") {
		t.Fatalf("skip-bad: %v, %+v", err, imgs)
	}
	if _, err := ReadImage(context.Background(), filepath.Join(dir, "huge.png"), Shape{8, 8, 3}, Limits{}); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "huge.png") {
		t.Errorf("one file: %v", err)
	}
}

var (
	bombsOnce sync.Once
	tarBomb   []byte // a .tar.gz of 1 MB holding one 1 GiB member
	zipBomb   []byte // a .zip of 1 MB holding one 1 GiB member
)

func bombs() ([]byte, []byte) {
	bombsOnce.Do(func() {
		tarBomb = hostile.TarGz("photos/bomb.png", 1<<30)
		zipBomb = hostile.Zip("photos/bomb.png", 1<<30)
	})
	return tarBomb, zipBomb
}

// Archives that inflate to gigabytes are refused without being read into
// memory: a .tar.gz by the bound on what it may inflate to (sizes come from
// the member headers), a .zip member by the bound on one member.
func TestArchiveBombs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two 1 GiB archives")
	}
	tgz, zp := bombs()
	dir := t.TempDir()
	tgzPath, zipPath := filepath.Join(dir, "bomb.tar.gz"), filepath.Join(dir, "bomb.zip")
	os.WriteFile(tgzPath, tgz, 0o644)
	os.WriteFile(zipPath, zp, 0o644)
	t.Logf("bomb.tar.gz %d bytes, bomb.zip %d bytes, each inflating to %d", len(tgz), len(zp), 1<<30)

	var err error
	grew := memstat.PeakGrowth(func() { _, err = ReadImages(tgzPath, Shape{8, 8, 3}, true, Limits{}) })
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "decompression bomb") || !strings.Contains(err.Error(), "bomb.tar.gz") ||
		strings.Count(err.Error(), "refused") != 1 {
		t.Errorf("tar.gz bomb: %v (want one word of refusal, naming the file)", err)
	}
	t.Logf("tar.gz: %v (peak +%.0f MiB)", err, grew)
	if grew > 1024 {
		t.Errorf("tar.gz bomb: peak memory grew by %.0f MiB", grew)
	}

	// The zip's member is over the per-member bound: a bad image, not read
	// into memory (the archive's only image, so nothing is left).
	grew = memstat.PeakGrowth(func() { _, err = ReadImages(zipPath, Shape{8, 8, 3}, true, Limits{}) })
	if err == nil || !strings.Contains(err.Error(), "bomb.zip:photos/bomb.png") || !strings.Contains(err.Error(), "inflates to 1073741824 bytes, over the limit") {
		t.Errorf("zip bomb, skip-bad: %v", err)
	}
	t.Logf("zip: %v (peak +%.0f MiB)", err, grew)
	if grew > 1024 {
		t.Errorf("zip bomb: peak memory grew by %.0f MiB", grew)
	}
	_, err = ReadImages(zipPath, Shape{8, 8, 3}, false, Limits{})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "bomb.zip:photos/bomb.png") {
		t.Errorf("zip bomb, strict: %v", err)
	}

	// With a generous inflation bound the tar's member still meets the
	// per-member bound: kept out, and an image there is a bad image.
	_, err = ReadImages(tgzPath, Shape{8, 8, 3}, false, Limits{MaxInflation: 1e6})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "bomb.tar.gz:photos/bomb.png: 1073741824 bytes, over the limit of 268435456") {
		t.Errorf("tar.gz, member bound: %v", err)
	}
}

// Headers that promise more than their file holds are refused before
// anything is allocated from them: IDX (plain and gzipped), CIFAR-10 batches.
func TestHeadersPromisingMoreThanTheFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct{ name, want string }{
		{write("huge-idx", hostile.IDX(1<<31, 1<<16, 1<<16)), "more than any file holds"},
		{write("big-idx", hostile.IDX(1_000_000, 28, 28)), "the file ends after 0: truncated"},
		{write("big-idx.gz", hostile.Gzip(hostile.IDX(1_000_000, 28, 28), 1000)), "may inflate to"},
	}
	for _, c := range cases {
		var err error
		grew := memstat.PeakGrowth(func() { _, _, err = readIDX(c.name, idxImages, Limits{}) })
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Base(c.name)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if grew > 64 {
			t.Errorf("%s: peak memory grew by %.0f MiB", c.name, grew)
		}
	}
	if _, err := ParseCIFAR10Batch(bytes.Repeat([]byte{1}, 3073*2+5), "ragged.bin"); err == nil || !strings.Contains(err.Error(), "ragged.bin") {
		t.Errorf("ragged CIFAR-10 batch: %v", err)
	}
}
