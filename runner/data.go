package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

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

func dataCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "data", Short: "data sets: fetch the official releases"}
	var o data.FetchOptions
	fetch := &cobra.Command{
		Use:   "fetch NAME",
		Short: "download an official release (" + strings.Join(data.ReleaseNames(), ", ") + "), checking its checksum",
		Long: `Downloads the official archives of a data set into --dir, resuming a partial
download, checking the published MD5, and renaming each file into place only
once it is whole. The configs read the files where this puts them by default:
  cifar10        datasets/cifar-10-binary.tar.gz   (configs/cifar10.yaml)
  tiny-imagenet  datasets/tiny-imagenet-200.zip    (configs/tiny_imagenet.yaml)
  fashion-mnist  datasets/fashion-mnist/           (set data.path; Debian's package is the default)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Dir == "" {
				o.Dir = "datasets"
				if args[0] == "fashion-mnist" {
					o.Dir = filepath.Join("datasets", "fashion-mnist")
				}
			}
			o.Progress = cmd.ErrOrStderr()
			paths, err := data.Fetch(cmd.Context(), args[0], o)
			for _, p := range paths {
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			return err
		},
	}
	fetch.Flags().StringVar(&o.Dir, "dir", "", "folder for the files (default datasets/, or datasets/fashion-mnist/)")
	fetch.Flags().StringVar(&o.Mirror, "mirror", "", "base URL of a mirror that serves the same file names")
	cmd.AddCommand(fetch)
	return cmd
}
