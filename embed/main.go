// Command embed embeds a whole image corpus with a run's encoder, on Apache Beam.
//
// Command embed computes the features of a whole image corpus with a trained
// run's encoder, as an Apache Beam pipeline: in-process on Prism (Beam's Go
// runner) by default, on Flink, Spark or Dataflow with Beam's --runner flags.
//
//	go run ./embed --run-dir runs/cifar10 --input 'photos/*/*.jpg' --output embeddings/
//	go run ./runner search --index embeddings/ --query q.jpg
//
// It writes, into --output (a folder, or a prefix in an object store), one
// Apache Parquet file per shard, part-NNNNN-of-MMMMM.parquet (columns path,
// label with --classes, feature: a fixed-size list of float32; the model in
// its metadata), or with --format npy shard-NNNNN-of-MMMMM.npy (float32
// [n, dim]) beside .paths.txt and with --classes .labels.txt; then bad.txt
// (images left out, with the reason) and embedding.json (the model's spec
// hash and step, counts, shards). Images go to shards by a hash of their
// path, and every file appears by rename (or one upload) when whole, so a
// rerun or a retried bundle rewrites the same shards.
//
// It is a binary of its own, not a runner subcommand: Beam registers its
// flags in Go's global flag set and remote workers start the same binary with
// them, which a cobra command line would refuse; and Beam makes the binary
// about 100 MB, which runner does not need to carry.
package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"

	_ "github.com/infomax/infomax/buckets" // s3:// and gs:// paths, here and on the workers
	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/encoder"
	"github.com/infomax/infomax/internal/store"
	"github.com/infomax/infomax/run"
	"github.com/infomax/infomax/search"
	_ "github.com/infomax/infomax/tflog"    // TensorFlow's log lines off unless --verbose
	_ "github.com/infomax/infomax/tfonednn" // TensorFlow's oneDNN kernels on every CPU
)

var (
	verbose  = flag.Bool("verbose", false, "show Beam's INFO lines and TensorFlow's log lines")
	runDir   = flag.String("run-dir", "", "the trained run whose encoder embeds (required)")
	input    = flag.String("input", "", "images: a folder, or glob patterns separated by commas (local, s3://bucket/…, gs://bucket/…)")
	output   = flag.String("output", "", "the output folder, local or s3://bucket/prefix, gs://bucket/prefix (required)")
	classes  = flag.String("classes", "", "record each image's class: folders (the name of the folder holding it), or a CSV file of path,class lines")
	shards   = flag.Int("shards", 64, "how many shards the images are spread over")
	strict   = flag.Bool("strict", false, "fail the job on a bad image instead of counting it")
	features = flag.String("features", encoder.ZMean, "which features: z_mean (the code), conv (the last convolutional map, flattened: h·w·c values) or conv_avg (that map averaged over its positions: c values)")
	format   = flag.String("format", search.FormatParquet, "the shards' format: parquet (part-NNNNN-of-MMMMM.parquet: path, label with --classes, feature; read by DuckDB, pandas, Polars, Spark) or npy (shard-NNNNN-of-MMMMM.npy beside .paths.txt and .labels.txt)")
	// compute: auto is decided once, on the machine that launches the
	// pipeline, so that every worker computes in the same precision.
	computeFlag = flag.String("compute", config.PrecisionAuto, "compute the features in auto (bfloat16 where the launching machine's CPU computes it natively, AMX or AVX512_BF16, else float32; every worker the same), float32 or bfloat16 (oneDNN's rewrite of a float32 model); a model trained in bfloat16 encodes in bfloat16")
)

func init() {
	flag.StringVar(computeFlag, "precision", config.PrecisionAuto, "deprecated: the older name of --compute (model.precision is the trained dtype)")
}

func main() {
	flag.Parse()
	beam.Init() // before anything else: remote workers start this binary too
	if !*verbose {
		// Beam and Prism log through slog: keep their INFO lines (a dozen a
		// job) off; warnings and errors stay.
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	}
	ctx := context.Background()
	o, err := options()
	if err == nil {
		err = check(ctx, o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(2)
	}
	if precisionNote != "" {
		fmt.Println(precisionNote)
	}
	t := time.Now()
	if err := execute(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
	fmt.Printf("embed: %s in %.1fs\n", o.Output, time.Since(t).Seconds())
}

// precisionNote says how options resolved --compute auto, printed once
// the checks pass.
var precisionNote string

func options() (Options, error) {
	if *runDir == "" || *input == "" || *output == "" {
		return Options{}, fmt.Errorf("pass --run-dir, --input and --output")
	}
	if *shards < 1 {
		return Options{}, fmt.Errorf("--shards %d: want at least 1", *shards)
	}
	if !slices.Contains(encoder.Features, *features) {
		return Options{}, fmt.Errorf("--features %q: want %s", *features, strings.Join(encoder.Features, ", "))
	}
	if *format != search.FormatParquet && *format != search.FormatNPY {
		return Options{}, fmt.Errorf("--format %q: want parquet or npy", *format)
	}
	inputs, err := Globs(*input)
	if err != nil {
		return Options{}, err
	}
	// --run-dir as given: remote workers resolve a relative one from their
	// own working folder (the worker image's WORKDIR).
	p := *computeFlag
	switch p {
	case "", config.PrecisionAuto:
		auto, why, err := config.AutoPrecision()
		if err != nil {
			return Options{}, fmt.Errorf("--compute auto: %w", err)
		}
		precisionNote = fmt.Sprintf("embed: computing in %s (%s, on this machine, for every worker)", auto, why)
		p = auto
	case "float32", "bfloat16":
	default:
		return Options{}, fmt.Errorf("--compute %q: want auto, float32 or bfloat16", p)
	}
	return Options{RunDir: *runDir, Inputs: inputs, Output: *output, Shards: *shards, Strict: *strict, Compute: p, Labels: *classes, Format: *format, Features: *features}, nil
}

// check refuses, before the pipeline starts, a run folder that does not
// open and inputs that match no image: each a line here rather than a
// failure inside a Beam step.
func check(ctx context.Context, o Options) error {
	dir, err := run.Local(ctx, o.RunDir)
	if err != nil {
		return fmt.Errorf("--run-dir: %w", err)
	}
	r, err := run.Open(dir)
	if err != nil {
		return fmt.Errorf("--run-dir: %w", err)
	}
	if _, err := loadLabels(ctx, o.Labels, r.Config.Data.Limits().MaxFileBytes); err != nil {
		return err
	}
	for _, glob := range o.Inputs {
		n := 0
		if err := listImages(ctx, glob, func(string) { n++ }); err != nil {
			return fmt.Errorf("--input: %w", err)
		}
		if n > 0 {
			return nil
		}
	}
	hint := ""
	for _, glob := range o.Inputs {
		if store.IsURL(glob) && !strings.ContainsAny(glob, "*?[") {
			hint = fmt.Sprintf(" (in an object store give a glob: %s/*/*.jpg lists the images in its class folders)", strings.TrimSuffix(glob, "/"))
		}
	}
	return fmt.Errorf("--input %s: no image (%s) matches%s", *input, strings.Join(data.ImageExtensions(), ", "), hint)
}

// Globs turns --input into glob patterns: a local folder becomes one pattern
// per folder under it (folder/*, folder/a/*, …), so that only folders, not
// files, are listed here; anything else is taken as glob patterns.
func Globs(in string) ([]string, error) {
	if fi, err := os.Stat(in); err == nil && fi.IsDir() {
		var globs []string
		err := filepath.WalkDir(in, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				abs, _ := filepath.Abs(p)
				globs = append(globs, filepath.Join(abs, "*"))
			}
			return err
		})
		return globs, err
	}
	return strings.Split(in, ","), nil
}

func execute(ctx context.Context, o Options) error {
	if err := store.MkdirAll(o.Output); err != nil {
		return err
	}
	p, s := beam.NewPipelineWithRoot()
	Build(s, o)
	return beamx.Run(ctx, p)
}
