package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/fsutil"
)

// Data is a run's data set: in memory (Splits), or listed to be streamed
// (Streams; data.streaming).
type Data struct {
	Splits  *data.Splits
	Streams *data.Streams
}

// DataOptions turns the config's data section into loader options for the
// model's input shape.
func (r *Run) DataOptions(man *graph.Manifest) (data.Options, error) {
	cfg := &r.Config.Config
	cache := cfg.Data.CacheDir
	switch cache {
	case "off":
		cache = ""
	case "":
		d, err := fsutil.UserCache("data")
		if err != nil {
			return data.Options{}, fmt.Errorf("data.cache_dir: %w (set a folder, or \"off\")", err)
		}
		cache = d
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

// LoadData reads the config's data set, converted to the model's input,
// into memory, or lists it for streaming (data.streaming), and says what it
// found. Formats that are a few files of fixed-size records are read into
// memory either way.
func (r *Run) LoadData(ctx context.Context, man *graph.Manifest, out io.Writer) (*Data, error) {
	cfg := &r.Config.Config
	if err := r.Config.CheckData(); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(r.Dir, ConfigFile), err)
	}
	o, err := r.DataOptions(man)
	if err != nil {
		return nil, err
	}
	t := time.Now()
	if cfg.Data.Streaming {
		st, err := data.OpenStreams(ctx, o)
		switch {
		case err == nil:
			tr := st.Train
			how := "image by image, in a seeded permutation per epoch"
			if tr.Sequential {
				how = fmt.Sprintf("shard by shard (%s in a seeded order per epoch) through a shuffle buffer of %d images (%.0f MiB)",
					plural(tr.Shards(), "shard"), min(cfg.Data.ShuffleBuffer, tr.Len()), float64(min(cfg.Data.ShuffleBuffer, tr.Len())*o.Shape.H*o.Shape.W*o.Shape.C)/(1<<20))
			}
			fmt.Fprintf(out, "data: streaming %d training and %d test images, %d classes, from %s, decoded to %dx%dx%d while training runs; read %s; listed in %.1fs\n",
				tr.Len(), st.Test.Len(), len(tr.Classes), tr.Source, o.Shape.H, o.Shape.W, o.Shape.C, how, time.Since(t).Seconds())
			return &Data{Streams: st}, nil
		case errors.Is(err, data.ErrInMemoryOnly):
			fmt.Fprintf(out, "data: data.streaming: %v: reading it into memory\n", err)
		default:
			return nil, err
		}
	}
	s, err := data.Load(ctx, o)
	if err != nil {
		return nil, err
	}
	s.Summary(out)
	fmt.Fprintf(out, "data: ready in %.1fs\n", time.Since(t).Seconds())
	return &Data{Splits: s}, nil
}

// TrainingImages is the number of training images and their size.
func (d *Data) TrainingImages() (n, imageBytes int) {
	if d.Streams != nil {
		s := d.Streams.Train
		return s.Len(), s.Shape.H * s.Shape.W * s.Shape.C
	}
	return d.Splits.Train.Len(), d.Splits.Train.ImageBytes()
}

// Labelled are the indices of the labelled training and test images.
func (d *Data) Labelled() (train, test []int32) {
	if d.Streams != nil {
		return LabelledIDs(d.Streams.Train.Labels), LabelledIDs(d.Streams.Test.Labels)
	}
	return LabelledIDs(d.Splits.Train.Labels), LabelledIDs(d.Splits.Test.Labels)
}

// Classes are the names of the data set's classes.
func (d *Data) Classes() []string {
	if d.Streams != nil {
		return d.Streams.Train.Classes
	}
	return d.Splits.Train.Classes
}

// LabelledIDs are the indices of the labelled images among labels.
func LabelledIDs(labels []int) []int32 {
	var ids []int32
	for i, l := range labels {
		if l != data.Unlabelled {
			ids = append(ids, int32(i))
		}
	}
	return ids
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
