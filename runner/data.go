package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/internal/store"
)

func dataCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "data", Short: "data sets: fetch the official releases, write the sharded layout",
		Args: cobra.NoArgs, // refuses `runner data bogus` (not a subcommand) instead of printing help
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
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
	cmd.AddCommand(fetch, shardsCmd())
	return cmd
}

type shardsOptions struct {
	Format, Path, Out string
	PerShard          int
	Seed              int64
	SkipBad           bool
}

func shardsCmd() *cobra.Command {
	var o shardsOptions
	cmd := &cobra.Command{
		Use:   "shards",
		Short: "write a data set into the sharded layout (tar shards + shards.json) for streaming",
		Long: `Writes the images of a data set (--format folder, tiny_imagenet or cifar10 as
an image folder; a folder or a .zip) into --out as tar files of --per-shard
images each, in a seeded random order so that every shard mixes every class,
plus shards.json (classes, counts and labels). Train on it with
data.format: shards, data.path: OUT, data.streaming: true. Images are copied as
they are (not re-encoded); each one's header is checked against the default
limits first. A folder without shards.json is an unfinished copy.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runShards(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&o.Format, "format", "folder", "the source's layout: folder, tiny_imagenet, cifar10 (as an image folder)")
	cmd.Flags().StringVar(&o.Path, "path", "", "the source: a folder or a .zip archive")
	cmd.Flags().StringVar(&o.Out, "out", "", "a new folder for the shards, local or in an object store (s3://bucket/prefix, gs://bucket/prefix)")
	cmd.Flags().IntVar(&o.PerShard, "per-shard", 1000, "images per tar file")
	cmd.Flags().Int64Var(&o.Seed, "seed", 0, "seed of the order the images are written in")
	cmd.Flags().BoolVar(&o.SkipBad, "skip-bad", false, "leave out images whose header cannot be read, and report them")
	cmd.MarkFlagRequired("path")
	cmd.MarkFlagRequired("out")
	return cmd
}

func runShards(ctx context.Context, o shardsOptions, out, progress io.Writer) error {
	t := time.Now()
	bar := progressbar.NewOptions(0, progressbar.OptionSetWriter(progress), progressbar.OptionSetDescription("shards"),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(progress) }))
	m, bad, err := data.WriteShards(ctx, data.Options{Format: o.Format, Path: o.Path, SkipBad: o.SkipBad, TestFraction: 0.1},
		data.ShardOptions{Out: o.Out, PerShard: o.PerShard, Seed: o.Seed, Progress: func(done, total int) {
			bar.ChangeMax(total)
			bar.Set(done)
		}})
	if err != nil {
		return err
	}
	bar.Finish()
	for _, name := range []string{"train", "test"} {
		if sp := m.Splits[name]; sp != nil {
			fmt.Fprintf(out, "shards: %s: %d images in %d shards\n", name, sp.Images, len(sp.Shards))
		}
	}
	fmt.Fprintf(out, "shards: %d classes from %s → %s in %.1fs; %d images left out\n", len(m.Classes), o.Path, store.Join(o.Out, data.ShardsFile), time.Since(t).Seconds(), len(bad))
	for _, b := range bad[:min(5, len(bad))] {
		fmt.Fprintf(out, "  left out: %s\n", b.Error())
	}
	return nil
}
