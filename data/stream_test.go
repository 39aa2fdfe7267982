package data

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/infomax/infomax/internal/memstat"
	"github.com/infomax/infomax/testkit/hostile"
)

// distinctTiny is a Tiny ImageNet layout of 3 classes × 20 training images
// and 10 validation images, every one a different lossless 8×8 PNG, so a
// decoded image says which file it came from.
func distinctTiny() files {
	fs := files{
		"tiny-imagenet-200/wnids.txt": []byte("n01\nn02\nn03\n"),
	}
	n := 0
	img := func() []byte {
		n++
		return encodePNG(solid(8, 8, color.RGBA{uint8(n), uint8(n >> 8), 7, 255}))
	}
	for c := 1; c <= 3; c++ {
		for i := 0; i < 20; i++ {
			fs[fmt.Sprintf("tiny-imagenet-200/train/n0%d/images/n0%d_%d.png", c, c, i)] = img()
		}
	}
	var ann strings.Builder
	for i := 0; i < 10; i++ {
		fs[fmt.Sprintf("tiny-imagenet-200/val/images/val_%d.png", i)] = img()
		fmt.Fprintf(&ann, "val_%d.png\tn0%d\t0\t0\t1\t1\n", i, 1+i%3)
	}
	fs["tiny-imagenet-200/val/val_annotations.txt"] = []byte(ann.String())
	return fs
}

var shape8 = Shape{8, 8, 3}

// epochs reads the epochs' images of a stream as the training loop does
// (from position from of the first), returning each image's first pixel
// pair (its identity) in order.
func readEpochs(t *testing.T, s *Stream, seed int64, buffer int, epochs []int, from int) []string {
	t.Helper()
	plans := func(yield func(Plan) bool) {
		for i, e := range epochs {
			ids, order := s.EpochOrder(seed, e, buffer)
			p := Plan{IDs: ids, ShardOrder: order}
			if i == 0 {
				p.From = from
			}
			if !yield(p) {
				return
			}
		}
	}
	r := s.Read(context.Background(), iter.Seq[Plan](plans), buffer+8)
	defer r.Close()
	var out []string
	px := make([]byte, shape8.bytes())
	for range len(epochs)*s.Len() - from {
		id, ok, err := r.Next(px)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Fatalf("image %d is bad", id)
		}
		out = append(out, fmt.Sprintf("%d/%d", px[0], px[1]))
	}
	return out
}

func identities(s *Set) []string {
	var out []string
	for i := 0; i < s.Len(); i++ {
		out = append(out, fmt.Sprintf("%d/%d", s.Image(i)[0], s.Image(i)[1]))
	}
	return out
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// Every source a streaming run reads: the folder and the zip image by
// image, the tar.gz in archive order, the sharded layout shard by shard.
func streamSources(t *testing.T) map[string]Options {
	fs := distinctTiny()
	dir := fs.writeDir(t)
	o := Options{Format: "tiny_imagenet", Shape: shape8, Limits: Limits{}}
	folder, zipped, tgz := o, o, o
	folder.Path, zipped.Path, tgz.Path = filepath.Join(dir, "tiny-imagenet-200"), fs.writeZip(t), fs.writeTar(t, true)
	sharded := Options{Format: "shards", Shape: shape8, Path: filepath.Join(t.TempDir(), "shards")}
	if _, _, err := WriteShards(context.Background(), folder, ShardOptions{Out: sharded.Path, PerShard: 7, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	return map[string]Options{"folder": folder, "zip": zipped, "tar.gz": tgz, "shards": sharded}
}

func TestStreamEpochSeesEveryImageOnce(t *testing.T) {
	mem, err := Load(context.Background(), Options{Format: "tiny_imagenet", Path: filepath.Join(distinctTiny().writeDir(t), "tiny-imagenet-200"), Shape: shape8})
	if err != nil {
		t.Fatal(err)
	}
	want := sortedCopy(identities(mem.Train))
	for name, o := range streamSources(t) {
		t.Run(name, func(t *testing.T) {
			st, err := OpenStreams(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if st.Train.Len() != 60 || st.Test.Len() != 10 || len(st.Train.Classes) != 3 {
				t.Fatalf("%d train, %d test, %d classes: want 60, 10, 3", st.Train.Len(), st.Test.Len(), len(st.Train.Classes))
			}
			wantSeq := name == "tar.gz" || name == "shards"
			if st.Train.Sequential != wantSeq {
				t.Errorf("sequential = %v, want %v", st.Train.Sequential, wantSeq)
			}
			for _, buffer := range []int{1, 16, 1000} {
				got := readEpochs(t, st.Train, 5, buffer, []int{0, 1}, 0)
				e0, e1 := got[:60], got[60:]
				if !slices.Equal(sortedCopy(e0), want) || !slices.Equal(sortedCopy(e1), want) {
					t.Fatalf("buffer %d: an epoch did not see every training image exactly once", buffer)
				}
				if slices.Equal(e0, e1) && !(buffer == 1 && name == "tar.gz") { // one shard, no buffer: no shuffle
					t.Errorf("buffer %d: two epochs in the same order", buffer)
				}
			}
			// Random access reads in the in-memory order: the same batches.
			if !st.Train.Sequential {
				got := readEpochs(t, st.Train, 5, 0, []int{2}, 0)
				var mem2 []string
				for _, i := range EpochPermutation(5, 2, mem.Train.Len()) {
					mem2 = append(mem2, identities(mem.Train)[i])
				}
				if !slices.Equal(got, mem2) {
					t.Error("random-access streaming order differs from the in-memory order")
				}
			}
			// Labels travel with their images.
			labelOf := map[string]int{}
			for i, id := range identities(mem.Train) {
				labelOf[id] = mem.Train.Labels[i]
			}
			err = st.Train.Each(context.Background(), nil, 9, func(px []byte, ids []int) error {
				for j, id := range ids {
					key := fmt.Sprintf("%d/%d", px[j*shape8.bytes()], px[j*shape8.bytes()+1])
					if labelOf[key] != st.Train.Labels[id] {
						return fmt.Errorf("image %s has label %d, want %d", key, st.Train.Labels[id], labelOf[key])
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestStreamResumesExactly(t *testing.T) {
	for name, o := range streamSources(t) {
		t.Run(name, func(t *testing.T) {
			st, err := OpenStreams(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			whole := readEpochs(t, st.Train, 11, 16, []int{0, 1, 2}, 0)
			for _, at := range []int{1, 23, 59} {
				resumed := readEpochs(t, st.Train, 11, 16, []int{1, 2}, at)
				if !slices.Equal(resumed, whole[60+at:]) {
					t.Errorf("resumed at image %d of epoch 1: the images differ from an uninterrupted read's", at)
				}
			}
		})
	}
}

func TestSequentialShuffleMixesShards(t *testing.T) {
	o := streamSources(t)["shards"]
	st, err := OpenStreams(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if st.Train.Shards() != 9 { // 60 images, 7 per shard
		t.Fatalf("%d shards, want 9", st.Train.Shards())
	}
	ids, order := st.Train.EpochOrder(1, 0, 1)
	// A buffer of 1 is no shuffle: the shards' images in the shard order.
	var want []int32
	for _, j := range order {
		for k := 0; k < st.Train.shards[j].count; k++ {
			want = append(want, int32(st.Train.shards[j].first+k))
		}
	}
	if !slices.Equal(ids, want) {
		t.Error("buffer 1: not the shards in their order")
	}
	if slices.IsSorted(order) {
		t.Error("the shard order is not shuffled")
	}
}

func TestStreamSkipsBadImages(t *testing.T) {
	fs := distinctTiny()
	fs["tiny-imagenet-200/train/n02/images/n02_3.png"] = []byte("not a png")
	// A 68-byte PNG claiming 100,000 × 100,000 pixels: refused from its header.
	fs["tiny-imagenet-200/train/n03/images/n03_5.png"] = hostile.PNG(100_000, 100_000)
	for _, gz := range []bool{false, true} {
		o := Options{Format: "tiny_imagenet", Path: fs.writeTar(t, gz), Shape: shape8}
		st, err := OpenStreams(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		err = st.Train.Each(context.Background(), nil, 8, func([]byte, []int) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "n02_3.png") || !strings.Contains(err.Error(), "--skip-bad") {
			t.Fatalf("a corrupt image without --skip-bad: %v", err)
		}
		o.SkipBad = true
		st, _ = OpenStreams(context.Background(), o)
		var n int
		grew := memstat.PeakGrowth(func() {
			for range 2 {
				n = 0
				if err := st.Train.Each(context.Background(), nil, 8, func(_ []byte, ids []int) error { n += len(ids); return nil }); err != nil {
					t.Fatal(err)
				}
			}
		})
		if n != 58 {
			t.Errorf("%d images read, want 58", n)
		}
		bad := st.Train.Bad()
		if len(bad) != 2 || !strings.Contains(bad[0].Error()+bad[1].Error(), "n02_3.png") || !strings.Contains(bad[0].Error()+bad[1].Error(), "100000×100000") {
			t.Errorf("bad images: %v, want n02_3.png and n03_5.png once each", bad)
		}
		if grew > 100 {
			t.Errorf("peak memory grew by %.0f MiB reading past a hostile header", grew)
		}
	}
}

func TestShardsLoadInMemoryAsTheSource(t *testing.T) {
	src := streamSources(t)
	a, err := Load(context.Background(), src["folder"])
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(context.Background(), src["shards"])
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]*Set{{a.Train, b.Train}, {a.Test, b.Test}} {
		if !slices.Equal(sortedCopy(identities(p[0])), sortedCopy(identities(p[1]))) {
			t.Error("the shards hold other images than their source")
		}
	}
}

func TestShardListErrors(t *testing.T) {
	dir := streamSources(t)["shards"].Path
	raw, err := os.ReadFile(filepath.Join(dir, ShardsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, from, to, want string }{
		{"escaping file name", `"file": "train-00000.tar"`, `"file": "../train-00000.tar"`, "want a .tar file name in the same folder"},
		{"labels short", `"images": 7,`, `"images": 8,`, "want as many labels as images"},
		{"wrong total", `"images": 60,`, `"images": 61,`, "its shards hold 60 images, it says 61"},
		{"other format", `"infomax-shards"`, `"webdataset"`, `want "infomax-shards"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(string(raw), c.from) {
				t.Fatalf("fixture lacks %s", c.from)
			}
			bad := t.TempDir()
			os.WriteFile(filepath.Join(bad, ShardsFile), []byte(strings.Replace(string(raw), c.from, c.to, 1)), 0o644)
			_, err := OpenStreams(context.Background(), Options{Format: "shards", Path: bad, Shape: shape8})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), ShardsFile) {
				t.Errorf("got %v, want an error naming %s with %q", err, ShardsFile, c.want)
			}
		})
	}
	// A shard cut short is an error naming it, not a shorter epoch.
	short := filepath.Join(dir, "train-00001.tar")
	b, _ := os.ReadFile(short)
	os.WriteFile(short, b[:len(b)/2], 0o644)
	st, err := OpenStreams(context.Background(), Options{Format: "shards", Path: dir, Shape: shape8})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Train.Each(context.Background(), nil, 8, func([]byte, []int) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "train-00001.tar") {
		t.Errorf("truncated shard: %v", err)
	}
	// An unfinished copy (no manifest) says so.
	_, err = OpenStreams(context.Background(), Options{Format: "shards", Path: t.TempDir(), Shape: shape8})
	if err == nil || !strings.Contains(err.Error(), "did not finish") {
		t.Errorf("no manifest: %v", err)
	}
	// The writer refuses a tar source and a non-empty folder.
	fs := distinctTiny()
	_, _, err = WriteShards(context.Background(), Options{Format: "tiny_imagenet", Path: fs.writeTar(t, true)}, ShardOptions{Out: t.TempDir(), PerShard: 5})
	if err == nil || !strings.Contains(err.Error(), "extract it") {
		t.Errorf("tar source: %v", err)
	}
	_, _, err = WriteShards(context.Background(), Options{Format: "tiny_imagenet", Path: fs.writeZip(t)}, ShardOptions{Out: dir, PerShard: 5})
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty output: %v", err)
	}
	if !errors.Is(func() error {
		_, err := OpenStreams(context.Background(), Options{Format: "fashion_mnist", Shape: shape8})
		return err
	}(), ErrInMemoryOnly) {
		t.Error("fashion_mnist should be read into memory")
	}
}
