package data

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
)

// ---- fixtures written by the tests ----

// files maps slash paths to contents; an entry ending in "/" is an empty folder.
type files map[string][]byte

func (fs files) writeDir(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	for name, b := range fs {
		p := filepath.Join(root, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			os.MkdirAll(p, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func (fs files) names() []string {
	var out []string
	for n := range fs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (fs files) writeTar(t testing.TB, gz bool) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range fs.names() {
		if strings.HasSuffix(n, "/") {
			tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeDir, Mode: 0o755})
			continue
		}
		tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(fs[n]))})
		tw.Write(fs[n])
	}
	tw.Close()
	out := buf.Bytes()
	name := "set.tar"
	if gz {
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		w.Write(out)
		w.Close()
		out, name = z.Bytes(), "set.tar.gz"
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (fs files) writeZip(t testing.TB) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range fs.names() {
		w, _ := zw.Create(n)
		if !strings.HasSuffix(n, "/") {
			w.Write(fs[n])
		}
	}
	zw.Close()
	p := filepath.Join(t.TempDir(), "set.zip")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// webpGrey is a 1×1 lossy WebP of mid grey (Go has no WebP encoder).
var webpGrey, _ = base64.StdEncoding.DecodeString("UklGRiIAAABXRUJQVlA4IBYAAAAwAQCdASoBAAEADsD+JaQAA3AAAAAA")

// solid is a w×h image of one colour.
func solid(w, h int, c color.Color) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < w*h; i++ {
		r, g, b, a := c.RGBA()
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = uint8(r>>8), uint8(g>>8), uint8(b>>8), uint8(a>>8)
	}
	return img
}

func encodePNG(img image.Image) []byte {
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

func encodeJPEG(img image.Image) []byte {
	var b bytes.Buffer
	jpeg.Encode(&b, img, &jpeg.Options{Quality: 100})
	return b.Bytes()
}

// ---- pixels ----

func TestColourModelsBecomeTheModelsChannels(t *testing.T) {
	red := color.RGBA{200, 10, 20, 255}
	gray16 := image.NewGray16(image.Rect(0, 0, 4, 4))
	for i := range gray16.Pix {
		gray16.Pix[i] = 0x80 // every 16-bit value 0x8080
	}
	pal := image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.Black, red})
	for i := range pal.Pix {
		pal.Pix[i] = 1
	}
	var gifb bytes.Buffer
	gif.Encode(&gifb, pal, nil)
	var bmpb bytes.Buffer
	bmp.Encode(&bmpb, solid(4, 4, red))
	alpha := image.NewNRGBA(image.Rect(0, 0, 4, 4)) // fully transparent red → black
	for i := 0; i < 16; i++ {
		copy(alpha.Pix[4*i:], []byte{200, 10, 20, 0})
	}
	cmyk := image.NewCMYK(image.Rect(0, 0, 4, 4))
	for i := 0; i < 16; i++ {
		copy(cmyk.Pix[4*i:], []byte{0, 255, 255, 0}) // pure red
	}
	cases := []struct {
		name    string
		encoded []byte
		img     image.Image
		c       int
		want    []byte // first pixel
	}{
		{"png rgb→rgb", encodePNG(solid(4, 4, red)), nil, 3, []byte{200, 10, 20}},
		{"png rgb→grey", encodePNG(solid(4, 4, red)), nil, 1, []byte{uint8((19595*200*257 + 38470*10*257 + 7471*20*257 + 1<<15) >> 24)}},
		{"png 16-bit grey→rgb", encodePNG(gray16), nil, 3, []byte{0x80, 0x80, 0x80}},
		{"gif palette→rgb", gifb.Bytes(), nil, 3, []byte{200, 10, 20}},
		{"bmp→rgb", bmpb.Bytes(), nil, 3, []byte{200, 10, 20}},
		{"png alpha→rgb", encodePNG(alpha), nil, 3, []byte{0, 0, 0}},
		{"cmyk→rgb", nil, cmyk, 3, []byte{255, 0, 0}},
		// A 1×1 lossy WebP (mid grey), resized to 4×4.
		{"webp→rgb", webpGrey, nil, 3, []byte{128, 128, 128}},
	}
	for _, c := range cases {
		dst := make([]byte, 4*4*c.c)
		var err error
		if c.encoded != nil {
			_, err = DecodeInto(dst, c.encoded, Shape{4, 4, c.c}, Limits{})
		} else {
			ImageInto(dst, c.img, Shape{4, 4, c.c})
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !bytes.Equal(dst[:c.c], c.want) {
			t.Errorf("%s: first pixel %v, want %v", c.name, dst[:c.c], c.want)
		}
	}
}

func TestResizeAntialiases(t *testing.T) {
	// A 64×64 checkerboard of single black and white pixels shrunk to 8×8 is
	// mid grey everywhere; nearest-neighbour sampling would give black or white.
	img := image.NewGray(image.Rect(0, 0, 64, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			if (x+y)%2 == 0 {
				img.Pix[y*64+x] = 255
			}
		}
	}
	dst := make([]byte, 64)
	if !ImageInto(dst, img, Shape{8, 8, 1}) {
		t.Fatal("not reported as resized")
	}
	for i, v := range dst {
		if v < 100 || v > 155 {
			t.Fatalf("pixel %d = %d after shrinking a checkerboard: want about 128", i, v)
		}
	}
}

// ---- image folders ----

func labelledFolder() files {
	red, blue := color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}
	return files{
		"photos/cats/a.png":      encodePNG(solid(8, 8, red)),
		"photos/cats/b.JPG":      encodeJPEG(solid(8, 8, red)),
		"photos/cats/notes.txt":  []byte("not an image"),
		"photos/dogs/c.png":      encodePNG(solid(16, 8, blue)), // another size: resized
		"photos/dogs/deep/d.png": encodePNG(solid(8, 8, blue)),
		"photos/dogs/e.webp":     webpGrey, // 1×1: resized
	}
}

func TestFolderFromDiskAndArchives(t *testing.T) {
	fs := labelledFolder()
	for _, src := range []struct{ name, path string }{
		{"folder", filepath.Join(fs.writeDir(t), "photos")},
		{"tar", fs.writeTar(t, false)},
		{"tar.gz", fs.writeTar(t, true)},
		{"zip", fs.writeZip(t)},
	} {
		s, err := Load(context.Background(), Options{Format: "folder", Path: src.path, Shape: Shape{8, 8, 3}, TestFraction: 0.25, Seed: 1})
		if err != nil {
			t.Fatalf("%s: %v", src.name, err)
		}
		if got := strings.Join(s.Train.Classes, ","); got != "cats,dogs" {
			t.Errorf("%s: classes %s", src.name, got)
		}
		if s.Train.Len()+s.Test.Len() != 5 || s.Test.Len() != 1 {
			t.Errorf("%s: %d train + %d test, want 4 + 1", src.name, s.Train.Len(), s.Test.Len())
		}
		if s.Resized != 2 {
			t.Errorf("%s: %d resized, want 2", src.name, s.Resized)
		}
		for _, set := range []*Set{s.Train, s.Test} {
			for i, l := range set.Labels {
				px := set.Image(i)
				if (l == 0) != (px[0] > 200 && px[2] < 50) {
					t.Errorf("%s: image %d label %d has pixel %v", src.name, i, l, px[:3])
				}
			}
		}
	}
}

func TestFlatFolderIsUnlabelled(t *testing.T) {
	dir := files{"a.png": encodePNG(solid(8, 8, color.White)), "b.gif": func() []byte {
		var b bytes.Buffer
		gif.Encode(&b, solid(8, 8, color.Black), nil)
		return b.Bytes()
	}()}.writeDir(t)
	s, err := Load(context.Background(), Options{Format: "folder", Path: dir, Shape: Shape{8, 8, 1}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Train.Len() != 2 || s.Train.Labels[0] != Unlabelled || len(s.Train.Classes) != 0 {
		t.Errorf("flat folder: %d images, labels %v, classes %v", s.Train.Len(), s.Train.Labels, s.Train.Classes)
	}
}

func TestBadInputNamesTheFile(t *testing.T) {
	png8 := encodePNG(solid(8, 8, color.White))
	corrupt := encodeJPEG(solid(8, 8, color.White))[:40]
	notArchive := filepath.Join(t.TempDir(), "data.tar.gz")
	os.WriteFile(notArchive, []byte("hello, not an archive"), 0o644)
	truncated := labelledFolder().writeTar(t, true)
	raw, _ := os.ReadFile(truncated)
	os.WriteFile(truncated, raw[:len(raw)/2], 0o644)

	cases := []struct {
		name, format, path, want, file string
	}{
		{"empty class folder", "folder", files{"r/cats/a.png": png8, "r/dogs/": nil}.writeDir(t) + "/r", "empty class folder", "dogs"},
		{"no images", "folder", files{"r/readme.txt": []byte("x")}.writeDir(t) + "/r", "no images", "/r"},
		{"images beside class folders", "folder", files{"r/a.png": png8, "r/cats/b.png": png8}.writeDir(t) + "/r", "holds both images", "/r"},
		{"corrupt image", "folder", files{"r/cats/bad.jpg": corrupt, "r/cats/ok.png": png8}.writeDir(t) + "/r", "unexpected EOF", "bad.jpg"},
		{"not an archive", "folder", notArchive, "not a folder nor a .tar", "data.tar.gz"},
		{"truncated archive", "folder", truncated, "truncated", "set.tar.gz"},
		{"missing path", "folder", "/nonexistent/photos", "no such file", "/nonexistent/photos"},
	}
	for _, c := range cases {
		_, err := Load(context.Background(), Options{Format: c.format, Path: c.path, Shape: Shape{8, 8, 3}, TestFraction: 0.5})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.file) {
			t.Errorf("%s: error %v, want it to name %s and say %q", c.name, err, c.file, c.want)
		}
	}
}

func TestSkipBadReportsWhatItLeftOut(t *testing.T) {
	png8 := encodePNG(solid(8, 8, color.White))
	fs := files{"r/cats/ok.png": png8, "r/cats/zz.jpg": []byte("garbage"), "r/dogs/ok.png": png8, "r/dogs/cut.png": png8[:30]}
	dir := fs.writeDir(t) + "/r"
	s, err := Load(context.Background(), Options{Format: "folder", Path: dir, Shape: Shape{8, 8, 1}, SkipBad: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Train.Len() != 2 || len(s.Bad) != 2 {
		t.Fatalf("%d images kept, %d bad; want 2 and 2", s.Train.Len(), len(s.Bad))
	}
	if !strings.HasSuffix(s.Bad[0].Path, "zz.jpg") && !strings.HasSuffix(s.Bad[1].Path, "zz.jpg") {
		t.Errorf("bad list %v does not name zz.jpg", s.Bad)
	}
	var msg bytes.Buffer
	s.Summary(&msg)
	if !strings.Contains(msg.String(), "2 images could not be decoded") || !strings.Contains(msg.String(), "cut.png") {
		t.Errorf("summary:\n%s", msg.String())
	}
}

// ---- CIFAR-10 binary ----

// cifarRecords makes n records whose pixels encode (record, plane).
func cifarRecords(n, label0 int) []byte {
	var b []byte
	for i := 0; i < n; i++ {
		rec := make([]byte, cifarRecord)
		rec[0] = byte((label0 + i) % 10)
		for p := 0; p < 3; p++ {
			for k := 0; k < 1024; k++ {
				rec[1+p*1024+k] = byte(i*3 + p)
			}
		}
		b = append(b, rec...)
	}
	return b
}

func cifarRelease(test []byte) files {
	fs := files{"cifar-10-batches-bin/batches.meta.txt": []byte(strings.Join(CIFAR10Classes, "\n") + "\n\n")}
	for i := 1; i <= 5; i++ {
		fs["cifar-10-batches-bin/data_batch_"+string(rune('0'+i))+".bin"] = cifarRecords(2, i)
	}
	fs["cifar-10-batches-bin/test_batch.bin"] = test
	return fs
}

func TestCIFAR10BinaryRelease(t *testing.T) {
	fs := cifarRelease(cifarRecords(3, 0))
	for _, path := range []string{filepath.Join(fs.writeDir(t), "cifar-10-batches-bin"), fs.writeTar(t, true)} {
		s, err := Load(context.Background(), Options{Format: "cifar10", Path: path, Shape: Shape{32, 32, 3}})
		if err != nil {
			t.Fatal(err)
		}
		if s.Train.Len() != 10 || s.Test.Len() != 3 || s.Train.Classes[9] != "truck" {
			t.Fatalf("%s: %d train, %d test, classes %v", path, s.Train.Len(), s.Test.Len(), s.Train.Classes)
		}
		// Planes R, G, B become interleaved pixels: record 1 of the test batch is (3, 4, 5).
		if px := s.Test.Image(1)[:6]; !bytes.Equal(px, []byte{3, 4, 5, 3, 4, 5}) {
			t.Errorf("%s: test image 1 starts %v, want [3 4 5 3 4 5]", path, px)
		}
		if s.Train.Labels[0] != 1 || s.Train.Labels[2] != 2 {
			t.Errorf("labels %v", s.Train.Labels)
		}
	}
	// Converted to the Fashion-MNIST model's input: 28×28 grey, all resized.
	s, err := Load(context.Background(), Options{Format: "cifar10", Path: filepath.Join(fs.writeDir(t), "cifar-10-batches-bin"), Shape: Shape{28, 28, 1}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Resized != 13 || len(s.Train.Images) != 10*28*28 {
		t.Errorf("resized %d, %d bytes", s.Resized, len(s.Train.Images))
	}
}

func TestCIFAR10BinaryErrors(t *testing.T) {
	badLabel := cifarRecords(2, 0)
	badLabel[cifarRecord] = 10
	cases := []struct {
		name string
		test []byte
		want string
	}{
		{"ragged", cifarRecords(2, 0)[:cifarRecord+100], "3173 bytes is not a whole number of 3073-byte records"},
		{"label", badLabel, "record 1 has label 10, out of range"},
	}
	for _, c := range cases {
		dir := cifarRelease(c.test).writeDir(t)
		_, err := Load(context.Background(), Options{Format: "cifar10", Path: dir, Shape: Shape{32, 32, 3}})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "test_batch.bin") {
			t.Errorf("%s: error %v, want it to name test_batch.bin and say %q", c.name, err, c.want)
		}
	}
	fs := cifarRelease(cifarRecords(1, 0))
	delete(fs, "cifar-10-batches-bin/data_batch_3.bin")
	if _, err := Load(context.Background(), Options{Format: "cifar10", Path: fs.writeDir(t), Shape: Shape{32, 32, 3}}); err == nil || !strings.Contains(err.Error(), "data_batch_3.bin: missing") {
		t.Errorf("missing batch: %v", err)
	}
}

// ---- Tiny ImageNet ----

func tinyRelease() files {
	img := encodeJPEG(solid(64, 64, color.RGBA{10, 200, 30, 255}))
	grey := encodeJPEG(image.NewGray(image.Rect(0, 0, 64, 64)))
	return files{
		"tiny-imagenet-200/wnids.txt":                   []byte("n02\nn01\n"),
		"tiny-imagenet-200/words.txt":                   []byte("n01\tgoldfish, Carassius auratus\nn02\tEuropean fire salamander\nn99\tother\n"),
		"tiny-imagenet-200/train/n01/images/n01_0.JPEG": img,
		"tiny-imagenet-200/train/n01/n01_boxes.txt":     []byte("n01_0.JPEG\t0\t0\t10\t10\n"),
		"tiny-imagenet-200/train/n02/images/n02_0.JPEG": img,
		"tiny-imagenet-200/train/n02/images/n02_1.JPEG": grey,
		"tiny-imagenet-200/val/val_annotations.txt":     []byte("val_0.JPEG\tn01\t0\t0\t1\t1\nval_1.JPEG\tn02\t0\t0\t1\t1\n"),
		"tiny-imagenet-200/val/images/val_0.JPEG":       grey,
		"tiny-imagenet-200/val/images/val_1.JPEG":       img,
		"tiny-imagenet-200/test/images/test_0.JPEG":     img,
	}
}

func TestTinyImageNetLayout(t *testing.T) {
	fs := tinyRelease()
	for _, path := range []string{filepath.Join(fs.writeDir(t), "tiny-imagenet-200"), fs.writeZip(t), fs.writeTar(t, true)} {
		s, err := Load(context.Background(), Options{Format: "tiny_imagenet", Path: path, Shape: Shape{64, 64, 3}})
		if err != nil {
			t.Fatal(err)
		}
		// Class order is wnids.txt's; names come from words.txt.
		if got := strings.Join(s.Train.Classes, ","); got != "European fire salamander,goldfish" {
			t.Errorf("%s: classes %q", path, got)
		}
		if s.Train.Len() != 3 || s.Test.Len() != 2 || s.Test.Labels[0] != 1 || s.Test.Labels[1] != 0 {
			t.Errorf("%s: %d train, test labels %v", path, s.Train.Len(), s.Test.Labels)
		}
		// The greyscale val image has three equal channels.
		if px := s.Test.Image(0)[:3]; px[0] != px[1] || px[1] != px[2] {
			t.Errorf("grey image became %v", px)
		}
	}
	s, err := Load(context.Background(), Options{Format: "tiny_imagenet", Path: fs.writeZip(t), Shape: Shape{64, 64, 3}, TinyTestForTraining: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Train.Len() != 4 || s.Train.Labels[3] != Unlabelled || s.Train.Labelled().Len() != 3 {
		t.Errorf("with the test split: %d train, labels %v", s.Train.Len(), s.Train.Labels)
	}
}

func TestTinyImageNetErrors(t *testing.T) {
	noAnn := tinyRelease()
	noAnn["tiny-imagenet-200/val/images/val_2.JPEG"] = noAnn["tiny-imagenet-200/val/images/val_0.JPEG"]
	emptyClass := tinyRelease()
	delete(emptyClass, "tiny-imagenet-200/train/n01/images/n01_0.JPEG")
	unknown := tinyRelease()
	unknown["tiny-imagenet-200/val/val_annotations.txt"] = []byte("val_0.JPEG\tn77\t0\t0\t1\t1\n")
	cases := []struct {
		name string
		fs   files
		want string
	}{
		{"val image without annotation", noAnn, "val_2.JPEG: no annotation in"},
		{"class without images", emptyClass, "class n01 has no images"},
		{"annotation of an unknown class", unknown, "class n77 is not in wnids.txt"},
	}
	for _, c := range cases {
		_, err := Load(context.Background(), Options{Format: "tiny_imagenet", Path: c.fs.writeDir(t), Shape: Shape{64, 64, 3}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := Load(context.Background(), Options{Format: "tiny_imagenet", Path: labelledFolder().writeDir(t), Shape: Shape{64, 64, 3}}); err == nil || !strings.Contains(err.Error(), "no wnids.txt") {
		t.Errorf("not Tiny ImageNet: %v", err)
	}
}

// ---- the decoded cache ----

func TestCacheServesTheSameArraysAndNoticesChanges(t *testing.T) {
	fs := labelledFolder()
	archive := fs.writeTar(t, true)
	o := Options{Format: "folder", Path: archive, Shape: Shape{8, 8, 3}, TestFraction: 0.25, CacheDir: t.TempDir()}
	first, err := Load(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if first.FromCache || first.Cached == "" {
		t.Fatalf("first load: from cache %v, written %q", first.FromCache, first.Cached)
	}
	second, err := Load(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !second.FromCache || !bytes.Equal(first.Train.Images, second.Train.Images) || !bytes.Equal(first.Test.Images, second.Test.Images) ||
		strings.Join(first.Train.Classes, ",") != strings.Join(second.Train.Classes, ",") || second.Resized != first.Resized {
		t.Fatal("the cached copy differs from the decoded data")
	}
	for i := range first.Train.Labels {
		if first.Train.Labels[i] != second.Train.Labels[i] {
			t.Fatal("cached labels differ")
		}
	}
	// Another source (new content) misses the cache.
	fs["photos/cats/e.png"] = encodePNG(solid(8, 8, color.White))
	os.WriteFile(archive, func() []byte { b, _ := os.ReadFile(fs.writeTar(t, true)); return b }(), 0o644)
	third, err := Load(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if third.FromCache || third.Train.Len()+third.Test.Len() != 6 {
		t.Errorf("changed source: from cache %v, %d images", third.FromCache, third.Train.Len()+third.Test.Len())
	}
}
