// Command batchjob is a Go batch job built on infomax, in a module of its
// own, as a user's program would be: it loads a trained run folder by its
// path (from any working directory), encodes every image under a folder
// from several goroutines that share one encoder, indexes the features and
// prints the nearest images of a few of them.
//
//	go run . --run-dir /abs/path/runs/fashion_mnist --images ~/photos [--workers 4] [-k 5]
//
// It checks itself: each query image must come back as its own nearest
// neighbour (cosine similarity 1), else it exits with status 1.
package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/encoder"
	"github.com/infomax/infomax/knn"
	"github.com/infomax/infomax/search"
	_ "github.com/infomax/infomax/tflog"    // opt in, from main: TensorFlow's start-up lines off
	_ "github.com/infomax/infomax/tfonednn" // opt in, from main: TensorFlow's oneDNN kernels on every x86 CPU
)

func main() {
	runDir := flag.String("run-dir", "", "a trained run folder")
	images := flag.String("images", "", "a folder of images (any layout, size and colour)")
	workers := flag.Int("workers", 4, "goroutines encoding at once, sharing one encoder")
	k := flag.Int("k", 5, "neighbours to print")
	queries := flag.Int("queries", 3, "how many of the images to look up")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("batchjob: ")
	if *runDir == "" || *images == "" || *workers < 1 {
		log.Fatal("pass --run-dir and --images (and --workers ≥ 1)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *runDir, *images, *workers, *k, *queries); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, runDir, images string, workers, k, queries int) error {
	t0 := time.Now()
	enc, err := encoder.Load(ctx, runDir)
	if err != nil {
		return err
	}
	defer enc.Close()

	var paths []string
	err = filepath.WalkDir(images, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && data.IsImage(p) {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return fmt.Errorf("no image under %s", images)
	}
	sort.Strings(paths)

	// Each goroutine encodes a contiguous slice of the paths with the one
	// shared encoder; bad files are left out and reported.
	type part struct {
		res *encoder.Result
		err error
	}
	parts := make([]part, workers)
	per := (len(paths) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := min(w*per, len(paths)), min((w+1)*per, len(paths))
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[w].res, parts[w].err = enc.EncodeFilesSkipBad(ctx, paths[lo:hi]...)
		}()
	}
	wg.Wait()
	var kept []string
	feats := knn.Features{Dim: enc.Dim()}
	bad := 0
	for w, p := range parts {
		if p.err != nil {
			return p.err
		}
		for _, i := range p.res.Kept {
			kept = append(kept, paths[w*per+i])
		}
		feats.Data = append(feats.Data, p.res.Features...)
		for _, b := range p.res.Bad {
			fmt.Printf("left out: %v\n", b)
			bad++
		}
	}
	ix, err := search.New(kept, feats, enc.Run, enc.ConfigHash, enc.Step)
	if err != nil {
		return err
	}
	ix.Precision = enc.Compute
	fmt.Printf("batchjob: %d images encoded (%d left out) by %d goroutines sharing one encoder (run %s, step %d, %d features, %s: %s) in %.1fs\n",
		len(kept), bad, workers, enc.Run, enc.Step, enc.Dim(), enc.Compute, enc.ComputeWhy, time.Since(t0).Seconds())

	for q := 0; q < min(queries, len(kept)); q++ {
		i := q * len(kept) / max(1, queries)
		hits, err := ix.Search(ctx, knn.Features{Dim: feats.Dim, Data: feats.Data[i*feats.Dim : (i+1)*feats.Dim]}, k, knn.Cosine)
		if err != nil {
			return err
		}
		fmt.Printf("%s:\n", kept[i])
		for _, h := range hits[0] {
			fmt.Printf("  %.4f  %s\n", h.Score, h.Path)
		}
		if hits[0][0].Score < 0.9999 {
			return fmt.Errorf("%s is not its own nearest image (cosine %.4f)", kept[i], hits[0][0].Score)
		}
	}
	return nil
}
