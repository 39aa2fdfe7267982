package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/infomax/infomax/data"
)

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
