package data

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// The real archives in ../shared/data (beside the project; see its README).
func sharedArchive(t testing.TB, name string) string {
	t.Helper()
	p, _ := filepath.Abs(filepath.Join("..", "..", "shared", "data", name))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is needed (../shared/data beside the project): %v", name, err)
	}
	return p
}

func balanced(t *testing.T, what string, s *Set, classes, per int) {
	t.Helper()
	count := make([]int, len(s.Classes))
	for _, l := range s.Labels {
		count[l]++
	}
	if len(s.Classes) != classes {
		t.Errorf("%s: %d classes, want %d", what, len(s.Classes), classes)
	}
	for c, n := range count {
		if n != per {
			t.Errorf("%s: class %d (%s) has %d images, want %d", what, c, s.Classes[c], n, per)
			return
		}
	}
}

// near checks pixels pinned from another decoder: libjpeg-turbo, read once
// with TensorFlow's tf.io.decode_jpeg(fancy_upscaling=False,
// dct_method="INTEGER_ACCURATE"), which samples chroma as Go's decoder does.
// The IDCTs still round differently, so a level or two may differ.
func near(t *testing.T, what string, got, want []byte) {
	t.Helper()
	for i := range want {
		d := int(got[i]) - int(want[i])
		if d < -2 || d > 2 {
			t.Errorf("%s: pixel %v, libjpeg-turbo says %v", what, got, want)
			return
		}
	}
}

func TestSharedCIFAR10JPEG(t *testing.T) {
	s, err := Load(context.Background(), Options{Format: "cifar10", Path: sharedArchive(t, "cifar10-jpeg.tar.gz"), Shape: Shape{32, 32, 3}})
	if err != nil {
		t.Fatal(err)
	}
	balanced(t, "train", s.Train, 10, 5000)
	balanced(t, "test", s.Test, 10, 1000)
	if s.Train.Classes[3] != "cat" || s.Train.Classes[8] != "ship" || s.Resized != 0 {
		t.Errorf("classes %v, resized %d", s.Train.Classes, s.Resized)
	}
	// train/cat/0000.jpg is the first cat: index 3·5000; test/ship/0007.jpg is 8·1000 + 7.
	px := func(set *Set, i, y, x int) []byte { o := (y*32 + x) * 3; return set.Image(i)[o : o+3] }
	near(t, "cat/0000 (0,0)", px(s.Train, 15000, 0, 0), []byte{131, 126, 122})
	near(t, "cat/0000 (16,16)", px(s.Train, 15000, 16, 16), []byte{16, 17, 19})
	near(t, "cat/0000 (31,31)", px(s.Train, 15000, 31, 31), []byte{144, 116, 69})
	near(t, "ship/0007 (0,0)", px(s.Test, 8007, 0, 0), []byte{216, 217, 212})
	near(t, "ship/0007 (16,16)", px(s.Test, 8007, 16, 16), []byte{208, 197, 191})
}

func TestSharedTinyImageNetSubset(t *testing.T) {
	s, err := Load(context.Background(), Options{Format: "tiny_imagenet", Path: sharedArchive(t, "tiny-imagenet-200-subset.tar.gz"), Shape: Shape{64, 64, 3}})
	if err != nil {
		t.Fatal(err)
	}
	balanced(t, "train", s.Train, 200, 100)
	balanced(t, "val", s.Test, 200, 50)
	// val/images sorts as val_0, val_1, val_10, …: val_1 (class n04067472,
	// line 2 of wnids.txt) is index 1, val_10 (greyscale) index 2.
	if s.Test.Labels[1] != 1 {
		t.Errorf("val_1 has label %d, want 1", s.Test.Labels[1])
	}
	px := func(i, y, x int) []byte { o := (y*64 + x) * 3; return s.Test.Image(i)[o : o+3] }
	near(t, "val_1 (0,0)", px(1, 0, 0), []byte{100, 81, 66})
	near(t, "val_1 (32,32)", px(1, 32, 32), []byte{118, 98, 74})
	near(t, "val_10 grey (0,0)", px(2, 0, 0), []byte{146, 146, 146})
	near(t, "val_10 grey (63,63)", px(2, 63, 63), []byte{244, 244, 244})
}
