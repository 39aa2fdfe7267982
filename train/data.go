package train

import (
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

// loadData reads the config's data set, converted to the model's input, and
// says what it found.
func loadData(cfg *config.Config, man *graph.Manifest, out io.Writer) (*data.Splits, error) {
	o, err := dataOptions(cfg, man)
	if err != nil {
		return nil, err
	}
	t := time.Now()
	s, err := data.Load(o)
	if err != nil {
		return nil, err
	}
	s.Summary(out)
	fmt.Fprintf(out, "data: ready in %.1fs\n", time.Since(t).Seconds())
	return s, nil
}
