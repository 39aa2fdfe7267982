package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/encoder"
	"github.com/infomax/infomax/internal/memstat"
	"github.com/infomax/infomax/internal/store"
	"github.com/infomax/infomax/knn"
	"github.com/infomax/infomax/report"
	"github.com/infomax/infomax/search"
)

type indexOptions struct {
	RunDir, Images, Out, Compute, Format, Features string
	SkipBad                                        bool
	ANN                                            string // "" or "hnsw"
	ANNM, ANNEfConstruction, ANNEf                 int
}

func indexCmd() *cobra.Command {
	var o indexOptions
	cmd := &cobra.Command{
		Use:   "index",
		Short: "encode every image of a folder or archive into a search index",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runIndex(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.RunDir, "run-dir", "", "the trained run whose encoder to use")
	cmd.Flags().StringVar(&o.Images, "images", "", "a folder or .tar/.tar.gz/.zip of images (any layout, any size)")
	cmd.Flags().StringVar(&o.Out, "out", "", "the index file to write (local, or s3:// and gs:// for --format parquet)")
	cmd.Flags().StringVar(&o.Format, "format", "", "idx (this project's index file) or parquet (a row per image: path, feature; for DuckDB, pandas, Polars, Spark); default: parquet for an --out ending in .parquet, else idx")
	cmd.Flags().BoolVar(&o.SkipBad, "skip-bad", false, "leave out images that fail to decode, and report them")
	cmd.Flags().StringVar(&o.Features, "features", encoder.ZMean, "which features: z_mean (the code), conv (the last convolutional map, flattened: h·w·c values) or conv_avg (that map averaged over its positions: c values)")
	cmd.Flags().StringVar(&o.Compute, "compute", config.PrecisionAuto, "compute the features in auto (bfloat16 where the CPU computes it natively, AMX or AVX512_BF16, else float32), float32 or bfloat16 (oneDNN's rewrite of a float32 model); a model trained in bfloat16 encodes in bfloat16")
	cmd.Flags().StringVar(&o.ANN, "ann", "", "also build an approximate index beside it: hnsw (hnswlib's HNSW graph, cosine), written to OUT.hnsw")
	cmd.Flags().IntVar(&o.ANNM, "ann.m", 32, "HNSW: links per node (2× on the bottom layer)")
	cmd.Flags().IntVar(&o.ANNEfConstruction, "ann.ef-construction", 100, "HNSW: candidates weighed per insertion")
	cmd.Flags().IntVar(&o.ANNEf, "ann.ef", 64, "HNSW: candidates weighed per search (recorded; runner search --ef changes it)")
	cmd.Flags().StringVar(&o.Compute, "precision", config.PrecisionAuto, "the older name of --compute")
	cmd.Flags().MarkDeprecated("precision", "use --compute (model.precision is the trained dtype)")
	for _, f := range []string{"run-dir", "images", "out"} {
		cmd.MarkFlagRequired(f)
	}
	return cmd
}

func runIndex(ctx context.Context, o indexOptions, out io.Writer) error {
	t := time.Now()
	format := o.Format
	if format == "" {
		format = "idx"
		if strings.HasSuffix(o.Out, ".parquet") {
			format = "parquet"
		}
	}
	if format != "idx" && format != "parquet" {
		return fmt.Errorf("--format %q: want idx or parquet", o.Format)
	}
	if o.ANN != "" && o.ANN != "hnsw" {
		return fmt.Errorf("--ann %q: want hnsw (or none)", o.ANN)
	}
	enc, err := encoder.Load(ctx, o.RunDir, encoder.WithCompute(o.Compute), encoder.WithFeatures(o.Features))
	if err != nil {
		return err
	}
	defer enc.Close()
	imgs, err := data.ReadImages(o.Images, enc.Shape, o.SkipBad, enc.Limits())
	if err != nil {
		return err
	}
	feats, err := enc.EncodePixels(ctx, imgs.Set.Images, imgs.Set.Len())
	if err != nil {
		return err
	}
	ix, err := search.New(imgs.Paths, knn.Features{Data: feats, Dim: enc.Dim()}, enc.Run, enc.ConfigHash, enc.Step)
	if err != nil {
		return err
	}
	ix.Precision, ix.Feature = enc.Compute, enc.Feature
	save := func() error { return ix.Save(o.Out) }
	if format == "parquet" {
		save = func() error { return ix.SaveParquet(ctx, o.Out) }
	}
	if err := save(); err != nil {
		return fmt.Errorf("index %s: %w", o.Out, err)
	}
	fmt.Fprintf(out, "index: %d images from %s (%d resized to %dx%d, %d left out) encoded by %s at step %d in %s (%s), %s (%d values) → %s in %.1fs\n",
		len(imgs.Paths), o.Images, imgs.Resized, enc.Shape.W, enc.Shape.H, len(imgs.Bad), o.RunDir, enc.Step, enc.Compute, enc.ComputeWhy, enc.Feature, enc.Dim(), o.Out, time.Since(t).Seconds())
	for _, b := range imgs.Bad[:min(5, len(imgs.Bad))] {
		fmt.Fprintf(out, "  left out: %s\n", b.Error())
	}
	if o.ANN == "" {
		return nil
	}
	rss := memstat.ResidentMiB()
	ann, err := search.BuildANN(ctx, ix, search.ANNParams{M: o.ANNM, EfConstruction: o.ANNEfConstruction}, o.ANNEf, knn.Options{Session: enc.Session()})
	if err != nil {
		return fmt.Errorf("the approximate index of %s: %w", o.Out, err)
	}
	defer ann.Close()
	path := search.ANNPath(o.Out)
	if err := ann.Save(ctx, path); err != nil {
		return fmt.Errorf("the approximate index: %w", err)
	}
	h := ann.Header
	fmt.Fprintf(out, "approximate index: HNSW (M %d, efConstruction %d) of %d images built in %.1fs (+%.0f MiB resident, graph %.1f MB); recall@10 %.4f at efSearch %d on %d held-out images → %s\n",
		h.M, h.EfConstruction, h.Rows, h.BuildSeconds, memstat.ResidentMiB()-rss, float64(h.GraphBytes)/1e6, h.Recall, h.EfSearch, h.RecallQueries, path)
	return nil
}

type searchOptions struct {
	Index, Query, Metric, Strip string
	K, Ef                       int
	JSON, Exact                 bool
}

func searchCmd() *cobra.Command {
	var o searchOptions
	cmd := &cobra.Command{
		Use:   "search",
		Short: "find the images of an index most like a query image",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSearch(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.Index, "index", "", "an index made by `runner index`, or embed's output folder (local, s3://…, gs://…)")
	cmd.Flags().StringVar(&o.Query, "query", "", "the query image (any size)")
	cmd.Flags().IntVarP(&o.K, "k", "k", 9, "how many neighbours")
	cmd.Flags().StringVar(&o.Metric, "metric", "cosine", "cosine or l2")
	cmd.Flags().StringVar(&o.Strip, "strip", "", "write a PNG of the query and its neighbours to this file (none unless given)")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the hits as JSON")
	cmd.Flags().BoolVar(&o.Exact, "exact", false, "search every feature even when the index has an approximate index (INDEX.hnsw)")
	cmd.Flags().IntVar(&o.Ef, "ef", 0, "the approximate index's search width (0: the one it was built with)")
	cmd.MarkFlagRequired("index")
	cmd.MarkFlagRequired("query")
	return cmd
}

func runSearch(ctx context.Context, o searchOptions, out io.Writer) error {
	metric := knn.Metric(o.Metric)
	if metric != knn.Cosine && metric != knn.L2 {
		return fmt.Errorf("--metric %q: want cosine or l2", o.Metric)
	}
	if o.K < 1 {
		return fmt.Errorf("-k %d: want at least 1", o.K)
	}
	ix, err := search.Load(ctx, o.Index)
	if err != nil {
		return err
	}
	if len(ix.Paths) == 0 {
		return fmt.Errorf("%s: %w: index a folder with images first (`runner index`)", o.Index, search.ErrEmpty)
	}
	// The query in the precision the index was encoded in (an index from
	// before the key: as exported, what encoding did then).
	// And the index's features (an index from before the key: z_mean).
	enc, err := encoder.Load(ctx, ix.Run, encoder.WithCompute(cmp.Or(ix.Precision, "float32")), encoder.WithFeatures(cmp.Or(ix.Feature, encoder.ZMean)))
	if err != nil {
		return fmt.Errorf("the encoder of index %s: %w", o.Index, err)
	}
	defer enc.Close()
	if enc.ConfigHash != ix.ConfigHash || enc.Step != ix.Step {
		return fmt.Errorf("%s was made by another model (spec %.12s at step %d; %s now holds spec %.12s at step %d): index the images again",
			o.Index, ix.ConfigHash, ix.Step, ix.Run, enc.ConfigHash, enc.Step)
	}
	q, err := data.ReadImage(ctx, o.Query, enc.Shape, enc.Limits())
	if errors.Is(err, data.ErrTooLarge) {
		return fmt.Errorf("query: %w", err)
	} else if err != nil {
		return fmt.Errorf("query: %w (want a JPEG, PNG, GIF, BMP or WebP image)", err)
	}
	feat, err := enc.EncodePixels(ctx, q, 1)
	if err != nil {
		return err
	}
	hits, how, err := searchIndex(ctx, o, ix, knn.Features{Data: feat, Dim: enc.Dim()}, knn.Options{Metric: metric, Session: enc.Session()})
	if err != nil {
		return err
	}
	if how != "" && !o.JSON {
		fmt.Fprintln(out, how)
	}
	if o.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(hits[0]); err != nil {
			return err
		}
	} else {
		label := "cosine"
		if metric == knn.L2 {
			label = "distance"
		}
		for _, h := range hits[0] {
			fmt.Fprintf(out, "%s %.4f  %s\n", label, h.Score, h.Path)
		}
	}
	if o.Strip == "" {
		return nil
	}
	row := report.GridRow{Query: q}
	for _, h := range hits[0] {
		px, err := data.ReadImage(ctx, h.Path, enc.Shape, enc.Limits())
		if err != nil {
			return fmt.Errorf("strip: %w", err)
		}
		row.Neighbours = append(row.Neighbours, px)
	}
	s := enc.Shape
	if err := report.WriteGrid(o.Strip, []report.GridRow{row}, s.H, s.W, s.C, report.GridScale(s.H)); err != nil {
		return err
	}
	if !o.JSON {
		fmt.Fprintf(out, "strip: %s\n", o.Strip)
	}
	return nil
}

// searchIndex searches ix: through its approximate index when it has one
// (INDEX.hnsw, for cosine) and --exact is not given, else every feature.
// It says which, with the recall the approximate index measured.
func searchIndex(ctx context.Context, o searchOptions, ix *search.Index, q knn.Features, ko knn.Options) ([][]search.Hit, string, error) {
	path := search.ANNPath(o.Index)
	there := false
	if !o.Exact {
		var err error
		if there, err = store.Exists(ctx, path); err != nil {
			return nil, "", err
		}
	}
	if !there || ko.Metric != knn.Cosine {
		hits, err := ix.SearchWith(ctx, q, o.K, ko)
		how := ""
		if there {
			how = fmt.Sprintf("search: exact (%s has an approximate index for cosine only)", path)
		}
		return hits, how, err
	}
	ann, err := search.LoadANN(ctx, path, ix)
	if err != nil {
		return nil, "", fmt.Errorf("%w (--exact searches without it)", err)
	}
	defer ann.Close()
	hits, err := ann.Search(ix, q, o.K, o.Ef)
	h := ann.Header
	ef := cmp.Or(o.Ef, h.EfSearch)
	return hits, fmt.Sprintf("search: approximate (HNSW, M %d, efSearch %d; its recall@10 at efSearch %d, measured when built on %d held-out images: %.4f); --exact searches every feature",
		h.M, ef, h.EfSearch, h.RecallQueries, h.Recall), err
}
