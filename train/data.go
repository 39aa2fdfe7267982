package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/graph"
)

// dataOptions turns the config's data section into loader options for the
// model's input shape.
func dataOptions(cfg *config.Config, man *graph.Manifest) (data.Options, error) {
	cache := cfg.Data.CacheDir
	switch cache {
	case "off":
		cache = ""
	case "":
		d, err := os.UserCacheDir()
		if err != nil {
			return data.Options{}, fmt.Errorf("data.cache_dir: %w (set a folder, or \"off\")", err)
		}
		cache = filepath.Join(d, "infomax", "data")
	}
	in := man.Input.Shape
	return data.Options{
		Format: cfg.Data.Format, Path: cfg.Data.Path,
		Shape:   data.Shape{H: in[0], W: in[1], C: in[2]},
		SkipBad: cfg.Data.SkipBad, TestFraction: cfg.Data.TestFraction, Seed: cfg.Seed,
		TinyTestForTraining: cfg.Data.TinyTestForTraining,
		CacheDir:            cache,
		Limits:              cfg.Data.Limits(),
	}, nil
}

// loadData reads the config's data set, converted to the model's input,
// into memory, or lists it for streaming (data.streaming), and says what it
// found. Formats that are a few files of fixed-size records are read into
// memory either way.
func (r *run) loadData(out io.Writer) error {
	cfg := &r.cfg.Config
	o, err := dataOptions(cfg, r.model.Manifest)
	if err != nil {
		return err
	}
	t := time.Now()
	if cfg.Data.Streaming {
		st, err := data.OpenStreams(o)
		switch {
		case err == nil:
			r.streams = st
			tr := st.Train
			how := "image by image, in a seeded permutation per epoch"
			if tr.Sequential {
				how = fmt.Sprintf("shard by shard (%s in a seeded order per epoch) through a shuffle buffer of %d images (%.0f MiB)",
					plural(tr.Shards(), "shard"), min(cfg.Data.ShuffleBuffer, tr.Len()), float64(min(cfg.Data.ShuffleBuffer, tr.Len())*o.Shape.H*o.Shape.W*o.Shape.C)/(1<<20))
			}
			fmt.Fprintf(out, "data: streaming %d training and %d test images, %d classes, from %s, decoded to %dx%dx%d while training runs; read %s; listed in %.1fs\n",
				tr.Len(), st.Test.Len(), len(tr.Classes), tr.Source, o.Shape.H, o.Shape.W, o.Shape.C, how, time.Since(t).Seconds())
			return nil
		case errors.Is(err, data.ErrInMemoryOnly):
			fmt.Fprintf(out, "data: data.streaming: %v: reading it into memory\n", err)
		default:
			return err
		}
	}
	s, err := data.Load(o)
	if err != nil {
		return err
	}
	r.splits = s
	s.Summary(out)
	fmt.Fprintf(out, "data: ready in %.1fs\n", time.Since(t).Seconds())
	return nil
}

// trainingImages is the number of training images and their size.
func (r *run) trainingImages() (n, imageBytes int) {
	if r.streams != nil {
		s := r.streams.Train
		return s.Len(), s.Shape.H * s.Shape.W * s.Shape.C
	}
	return r.splits.Train.Len(), r.splits.Train.ImageBytes()
}

// batches starts the batches of steps start+1..total.
func (r *run) batches(ctx context.Context, perEpoch, start, total int64) *batcher {
	batch := r.cfg.Train.BatchSize
	_, per := r.trainingImages()
	if r.streams != nil {
		f := newStreamBatches(ctx, r.streams.Train, r.cfg.Seed, batch, r.cfg.Data.ShuffleBuffer, perEpoch, start, total)
		return prefetch(ctx, f, batch*per, start, total)
	}
	return prefetch(ctx, newMemoryBatches(r.splits.Train, r.cfg.Seed, batch, perEpoch), batch*per, start, total)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
