package encoder_test

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/encoder"
	"github.com/infomax/infomax/internal/hostile"
	"github.com/infomax/infomax/internal/memstat"
	"github.com/infomax/infomax/internal/testmodel"
)

// EncodeFiles gives the features EncodeImages gives for the same pictures,
// and refuses a file whose header claims a huge image, naming it, without
// allocating what it claims.
func TestEncodeFilesAndHostileFiles(t *testing.T) {
	tmp := t.TempDir()
	runDir, err := testmodel.Run(filepath.Join(tmp, "run"))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := encoder.Load(runDir)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()

	g := image.NewGray(image.Rect(0, 0, 28, 28))
	for i := range g.Pix {
		g.Pix[i] = uint8(i * 7)
	}
	var b bytes.Buffer
	png.Encode(&b, g)
	good := filepath.Join(tmp, "good.png")
	os.WriteFile(good, b.Bytes(), 0o644)
	fromFile, err := enc.EncodeFiles(good)
	if err != nil {
		t.Fatal(err)
	}
	fromImage, err := enc.EncodeImages([]image.Image{g})
	if err != nil {
		t.Fatal(err)
	}
	for i := range fromFile {
		if fromFile[i] != fromImage[i] {
			t.Fatalf("feature %d: %v from the file, %v from the image", i, fromFile[i], fromImage[i])
		}
	}

	for name, raw := range map[string][]byte{
		"huge.png": hostile.PNG(100_000, 100_000), "huge.jpg": hostile.JPEG(65535, 65535),
		"huge.gif": hostile.GIF(65535, 65535), "huge.bmp": hostile.BMP(100_000, 100_000), "huge.webp": hostile.WebP(40_000, 40_000),
	} {
		p := filepath.Join(tmp, name)
		os.WriteFile(p, raw, 0o644)
		before := memstat.PeakMiB()
		_, err := enc.EncodeFiles(good, p)
		if !errors.Is(err, data.ErrTooLarge) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want data.ErrTooLarge naming the file", name, err)
		}
		if grew := memstat.PeakMiB() - before; grew > 256 {
			t.Errorf("%s: peak memory grew by %.0f MiB", name, grew)
		}
	}

	// The limits are the run's, and the caller's to change.
	enc.Limits.MaxPixels = 28*28 - 1
	if _, err := enc.EncodeFiles(good); !errors.Is(err, data.ErrTooLarge) {
		t.Errorf("28×28 over a limit of 783 pixels: %v", err)
	}
}
