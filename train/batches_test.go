package train

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/testkit/testmodel"
)

// With --skip-bad, a streamed epoch's batches are whole: the bad image's
// place is a copy of another image of its batch, every good image is in the
// epoch once, and the bad one is counted once however often it is met.
func TestStreamBatchesSkipBadKeepBatchesWhole(t *testing.T) {
	root := testmodel.FashionMNISTFolder(t, 64, 10)
	bad := filepath.Join(root, "train", "class0", "zz-corrupt.png")
	if err := os.WriteFile(bad, []byte("\x89PNG\r\n\x1a\nnot really"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := data.OpenStreams(context.Background(), data.Options{Format: "folder", Path: root, Shape: data.Shape{H: 28, W: 28, C: 1}, SkipBad: true})
	if err != nil {
		t.Fatal(err)
	}
	const batch, perEpoch = 13, 5 // 65 images: 64 good, 1 bad
	if st.Train.Len() != batch*perEpoch {
		t.Fatalf("%d training images listed, want 65", st.Train.Len())
	}
	f := newStreamBatches(context.Background(), st.Train, 7, batch, 100, perEpoch, 0, 2*perEpoch)
	defer f.close()
	per := 28 * 28
	buf := make([]byte, batch*per)
	for epoch := 0; epoch < 2; epoch++ {
		seen := map[string]int{}
		dups := 0
		for step := int64(epoch * perEpoch); step < int64((epoch+1)*perEpoch); step++ {
			if err := f.fill(step, buf); err != nil {
				t.Fatal(err)
			}
			inBatch := map[string]bool{}
			for i := 0; i < batch; i++ {
				img := string(buf[i*per : (i+1)*per])
				if inBatch[img] {
					dups++
				}
				inBatch[img] = true
				seen[img]++
			}
		}
		if len(seen) != 64 || dups != 1 {
			t.Errorf("epoch %d: %d distinct images and %d copies within a batch, want 64 and 1", epoch, len(seen), dups)
		}
	}
	if b := st.Train.Bad(); len(b) != 1 || filepath.Base(b[0].Path) != "zz-corrupt.png" {
		t.Errorf("bad images: %v, want zz-corrupt.png once", b)
	}
}
