package data

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image/color"
	"image/gif"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/bmp"

	"github.com/infomax/infomax/testkit/hostile"
)

// Fuzz targets for every reader of a file a user hands us. `make fuzz` runs
// each for a bounded time; plain `go test` runs their seed corpora and the
// inputs that once failed (testdata/fuzz). Each target's only claim: no
// panic, and no allocation past the limits, whatever the bytes.

// fuzzLimits keep one execution small: under the fuzzer's coverage
// instrumentation, inflating a megabyte takes seconds.
var fuzzLimits = Limits{MaxPixels: 1 << 20, MaxSide: 4096, MaxFileBytes: 64 << 10, MaxInflation: 4}

func imageSeeds() [][]byte {
	img := solid(6, 5, color.RGBA{200, 100, 50, 255})
	var g, b bytes.Buffer
	gif.Encode(&g, img, nil)
	bmp.Encode(&b, img)
	return [][]byte{encodePNG(img), encodeJPEG(img), g.Bytes(), b.Bytes(), webpGrey,
		hostile.PNG(100_000, 100_000), hostile.JPEG(65535, 65535), hostile.GIF(65535, 65535),
		hostile.BMP(100_000, 100_000), hostile.WebP(40_000, 40_000)}
}

func FuzzDecodeImage(f *testing.F) {
	for _, s := range imageSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		DecodeInto(make([]byte, 8*8*3), b, Shape{8, 8, 3}, fuzzLimits)
		DecodeInto(make([]byte, 8*8), b, Shape{8, 8, 1}, fuzzLimits)
	})
}

func FuzzIDX(f *testing.F) {
	plain := append(hostile.IDX(2, 2, 2), 1, 2, 3, 4, 5, 6, 7, 8)
	f.Add(plain)
	f.Add(hostile.Gzip(plain, 0))
	f.Add(hostile.IDX(1<<31, 1<<16, 1<<16))
	f.Add(hostile.Gzip(hostile.IDX(1_000_000, 28, 28), 1000))
	f.Add(append(hostile.IDX(3), 0, 1, 2))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, magic := range []uint32{idxImages, idxLabels} {
			dims, data, err := decodeIDX(bufio.NewReader(bytes.NewReader(b)), int64(len(b)), magic, fuzzLimits)
			if err == nil {
				n := 1
				for _, d := range dims {
					n *= d
				}
				if n != len(data) {
					t.Fatalf("dims %v but %d bytes", dims, len(data))
				}
			}
		}
	})
}

func FuzzCIFAR10Batch(f *testing.F) {
	f.Add(cifarRecords(2, 3))
	f.Add(bytes.Repeat([]byte{1}, 3073*2+5))
	f.Add([]byte{10})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseCIFAR10Batch(b, "batch.bin")
		if err == nil && s.Len()*3073 != len(b) {
			t.Fatalf("%d records from %d bytes", s.Len(), len(b))
		}
	})
}

func archiveSeeds(f *testing.F, write func(files) string) {
	for _, fs := range []files{labelledFolder(), {"a/x.png": encodePNG(solid(3, 3, color.White)), "b/": nil}} {
		raw, err := os.ReadFile(write(fs))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
}

// readAll opens every member of a tree: what a loader does.
func readAll(tr *tree) {
	for _, n := range tr.files {
		tr.read(n)
	}
}

func FuzzTar(f *testing.F) {
	archiveSeeds(f, func(fs files) string { return fs.writeTar(f, false) })
	archiveSeeds(f, func(fs files) string { return fs.writeTar(f, true) })
	f.Add(hostile.TarGz("bomb.png", 128<<10)) // over fuzzLimits.MaxFileBytes
	f.Add(hostile.TarGzMany("m", 30, 16<<10)) // over its inflation bound
	f.Fuzz(func(t *testing.T, b []byte) {
		gz := len(b) > 1 && b[0] == 0x1f && b[1] == 0x8b
		if tr, err := readTar(bytes.NewReader(b), "f.tar", int64(len(b)), gz, fuzzLimits); err == nil {
			readAll(tr)
		}
	})
}

func FuzzZip(f *testing.F) {
	archiveSeeds(f, func(fs files) string { return fs.writeZip(f) })
	f.Add(hostile.Zip("bomb.png", 128<<10))
	f.Fuzz(func(t *testing.T, b []byte) {
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		readAll(zipTree(zr, "f.zip", fuzzLimits))
	})
}

// FuzzShards: a sharded layout with any shards.json and any shard is an
// error or images, never a crash (the streamed tar reader, listTar and
// scanItems, too).
func FuzzShards(f *testing.F) {
	fs := files{"a/x.png": encodePNG(solid(3, 3, color.White)), "b/y.png": encodePNG(solid(3, 3, color.Black))}
	dir := f.TempDir()
	src := fs.writeDir(f)
	if _, _, err := WriteShards(context.Background(), Options{Format: "folder", Path: src, TestFraction: 0.5}, ShardOptions{Out: filepath.Join(dir, "s"), PerShard: 1}); err != nil {
		f.Fatal(err)
	}
	manifest, _ := os.ReadFile(filepath.Join(dir, "s", ShardsFile))
	shard, _ := os.ReadFile(filepath.Join(dir, "s", "train-00000.tar"))
	f.Add(manifest, shard)
	f.Add([]byte(`{"format":"infomax-shards","version":1,"classes":[],"splits":{"train":{"images":1,"shards":[{"file":"t.tar","images":1,"labels":[-1]}]}}}`), hostile.TarGz("bomb.png", 128<<10))
	f.Fuzz(func(t *testing.T, m, tarBytes []byte) {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, ShardsFile), m, 0o644)
		var mf ShardList
		if json.Unmarshal(m, &mf) == nil {
			for _, sp := range mf.Splits {
				for _, sh := range sp.Shards {
					if sh.File != "" && !strings.ContainsAny(sh.File, "/\\") {
						os.WriteFile(filepath.Join(d, sh.File), tarBytes, 0o644)
					}
				}
			}
		}
		o := Options{Format: "shards", Path: d, Shape: Shape{4, 4, 3}, SkipBad: true, Limits: fuzzLimits}
		if st, err := OpenStreams(context.Background(), o); err == nil {
			st.Train.Each(context.Background(), nil, 4, func([]byte, []int) error { return nil })
		}
		tp := filepath.Join(d, "x.tar")
		os.WriteFile(tp, tarBytes, 0o644)
		if st, err := OpenStreams(context.Background(), Options{Format: "folder", Path: tp, Shape: Shape{4, 4, 3}, SkipBad: true, Limits: fuzzLimits, TestFraction: 0.5}); err == nil {
			st.Train.Each(context.Background(), nil, 4, func([]byte, []int) error { return nil })
		}
	})
}

// FuzzReadCache: a corrupt file in the decoded-data cache is refused (and
// then rebuilt by Load), never trusted.
func FuzzReadCache(f *testing.F) {
	dir := f.TempDir()
	set := &Set{Images: make([]byte, 3*2*2), Labels: []int{0, 1, 0}, H: 2, W: 2, C: 1, Classes: []string{"a", "b"}}
	p, err := writeCache(dir, "seed", &Splits{Train: set, Test: set})
	if err != nil {
		f.Fatal(err)
	}
	raw, _ := os.ReadFile(p)
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(cachePath(dir, "x"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if s, err := readCache(dir, "x"); err == nil {
			for _, set := range []*Set{s.Train, s.Test} {
				if len(set.Images) != set.Len()*set.ImageBytes() {
					t.Fatalf("%d bytes for %d images of %d", len(set.Images), set.Len(), set.ImageBytes())
				}
			}
		}
	})
}
