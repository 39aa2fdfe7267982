package main

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"io"
	"slices"

	"github.com/infomax/infomax/internal/store"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"sync"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/local"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/encoder"
	"github.com/infomax/infomax/internal/npy"
	"github.com/infomax/infomax/knn"
	"github.com/infomax/infomax/search"
)

func init() {
	register.Function3x1(listImages)
	register.DoFn1x2[string, int, string](&shardKeyFn{})
	register.DoFn4x1[context.Context, int, func(*string) bool, func(shardResult), error](&encodeShardFn{})
	register.Function2x1(sumResults)
	register.DoFn2x1[context.Context, shardResult, error](&writeManifestFn{})
	register.Emitter1[string]()
	register.Emitter1[shardResult]()
	register.Iter1[string]()
}

// Options of one embedding job.
type Options struct {
	RunDir string // the trained run whose encoder embeds
	// Precision encodes in float32 or bfloat16 (auto or "": as
	// encoder.WithCompute decides on each worker; the embed binary
	// resolves auto once, before the pipeline starts).
	Compute string
	Inputs  []string // glob patterns, read through Beam's filesystems (local ones imported)
	Output  string   // the output folder: local, or a prefix in an object store (s3://, gs://)
	// Labels gives each image a class: "folders" (the name of the folder
	// holding it), a CSV file of path,class lines (local or in a store), or
	// "" for none.
	Labels string
	Shards int  // images are spread over this many shards by a hash of their path
	Strict bool // a bad image fails the job instead of being counted
	// Format is the shards' format: search.FormatParquet (also "") or
	// search.FormatNPY.
	Format string
	// Features is which of the encoder's features to write: encoder.ZMean
	// (also ""), encoder.Conv or encoder.ConvAvg.
	Features string
}

// format is o.Format with its default.
func (o Options) format() string { return cmp.Or(o.Format, search.FormatParquet) }

// shardResult is what shards wrote; sumResults adds them up for the manifest.
type shardResult struct {
	Images     int
	Bad        []string // "path<TAB>reason"
	Shards     []string
	Classes    []string // the classes of the shard's images, each once
	Unlabelled int
}

func sumResults(a, b shardResult) shardResult {
	return shardResult{Images: a.Images + b.Images, Bad: append(a.Bad, b.Bad...), Shards: append(a.Shards, b.Shards...),
		Classes: append(a.Classes, b.Classes...), Unlabelled: a.Unlabelled + b.Unlabelled}
}

// Build adds the embedding pipeline to s: match the inputs, keep the images,
// spread them over o.Shards by a hash of the path (so a rerun, or a retried
// bundle, writes the same shards), encode each shard and write it whole,
// then the manifest.
func Build(s beam.Scope, o Options) {
	globs := beam.Reshuffle(s, beam.CreateList(s, o.Inputs))
	paths := beam.ParDo(s, listImages, globs)
	grouped := beam.GroupByKey(s, beam.ParDo(s, &shardKeyFn{Shards: o.Shards}, paths))
	results := beam.ParDo(s, &encodeShardFn{withEncoder: withEncoder{RunDir: o.RunDir, Compute: o.Compute, Features: o.Features}, Output: o.Output, Shards: o.Shards, Strict: o.Strict, Labels: o.Labels, Format: o.format()}, grouped)
	beam.ParDo0(s, &writeManifestFn{withEncoder: withEncoder{RunDir: o.RunDir, Compute: o.Compute, Features: o.Features}, Output: o.Output, Inputs: o.Inputs, Labels: o.Labels, Format: o.format()}, beam.Combine(s, sumResults, results))
}

// labeler gives an image its class.
type labeler struct {
	folders bool              // the name of the folder holding it
	byPath  map[string]string // from a labels file: path (or its last elements) → class
}

// loadLabels reads the --classes setting: "folders", a CSV file of
// path,class lines (a header line "path,class" is allowed), or "" (nil).
// A path in the file names an image by its full path or URL, or by its
// last elements (cat/0001.jpg, 0001.jpg); the longest match wins.
func loadLabels(ctx context.Context, spec string, max int64) (*labeler, error) {
	switch spec {
	case "":
		return nil, nil
	case "folders":
		return &labeler{folders: true}, nil
	}
	raw, err := store.ReadFile(ctx, spec, max)
	if err != nil {
		return nil, fmt.Errorf("--classes: %w", err)
	}
	r := csv.NewReader(bytes.NewReader(raw))
	r.FieldsPerRecord = 2
	l := &labeler{byPath: map[string]string{}}
	for line := 1; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("--classes %s: %w (want path,class lines)", spec, err)
		}
		if line == 1 && rec[0] == "path" && rec[1] == "class" {
			continue
		}
		p, c := strings.TrimPrefix(rec[0], "./"), rec[1]
		if p == "" || c == "" {
			return nil, fmt.Errorf("--classes %s: line %d: an empty path or class", spec, line)
		}
		if old, ok := l.byPath[p]; ok && old != c {
			return nil, fmt.Errorf("--classes %s: line %d: %s is %q and %q", spec, line, p, old, c)
		}
		l.byPath[p] = c
	}
	if len(l.byPath) == 0 {
		return nil, fmt.Errorf("--classes %s: no path,class line", spec)
	}
	return l, nil
}

// class is p's class, "" when it has none.
func (l *labeler) class(p string) string {
	if l.folders {
		return store.Base(store.Dir(p))
	}
	for key := p; ; {
		if c, ok := l.byPath[key]; ok {
			return c
		}
		i := strings.Index(key, "/")
		if i < 0 {
			return ""
		}
		key = key[i+1:]
	}
}

// listImages emits the images a glob matches, on any Beam filesystem. (Not
// fileio.MatchFiles: Beam 2.77's local filesystem opens every file to learn
// its size and never closes it, which runs out of file descriptors on a
// large folder.)
func listImages(ctx context.Context, glob string, emit func(string)) error {
	fs, err := filesystem.New(ctx, glob)
	if err != nil {
		return fmt.Errorf("%s: %w", glob, err)
	}
	defer fs.Close()
	paths, err := fs.List(ctx, glob)
	if err != nil {
		return fmt.Errorf("%s: %w", glob, err)
	}
	for _, p := range paths {
		if data.IsImage(p) {
			emit(p)
		}
	}
	return nil
}

// shardKeyFn keys a path by its shard: a hash of the path, so the same
// image always lands in the same shard.
type shardKeyFn struct{ Shards int }

func (f *shardKeyFn) ProcessElement(path string) (int, string) {
	h := fnv.New32a()
	h.Write([]byte(path))
	return int(h.Sum32() % uint32(f.Shards)), path
}

// ShardName is the base name of shard i of n in format: part-00000-of-00064
// for Parquet (the name Spark and Beam give parts), shard-00000-of-00064
// for .npy.
func ShardName(format string, i, n int) string {
	if format == search.FormatNPY {
		return fmt.Sprintf("shard-%05d-of-%05d", i, n)
	}
	return fmt.Sprintf("part-%05d-of-%05d", i, n)
}

// withEncoder gives a DoFn the shared encoder of its run from Setup to
// Teardown.
type withEncoder struct {
	RunDir   string
	Compute  string
	Features string
	enc      *sharedEncoder
}

func (w *withEncoder) key() string { return w.RunDir + "\x00" + w.Compute + "\x00" + w.Features }

func (w *withEncoder) Setup(ctx context.Context) error {
	var err error
	w.enc, err = acquire(ctx, w.key(), func() (*encoder.Encoder, error) {
		return encoder.Load(ctx, w.RunDir, encoder.WithCompute(w.Compute), encoder.WithFeatures(w.Features))
	})
	return err
}

func (w *withEncoder) Teardown() { release(w.key()) }

// sharedEncoder is one encoder per worker process and run, shared by every
// DoFn instance there (loading it costs a TensorFlow session; an Encoder is
// safe for concurrent use).
type sharedEncoder struct {
	enc  *encoder.Encoder
	refs int
}

var (
	encodersMu sync.Mutex
	encoders   = map[string]*sharedEncoder{}
)

// acquire is the worker's encoder of key, loaded by load the first time.
func acquire(ctx context.Context, key string, load func() (*encoder.Encoder, error)) (*sharedEncoder, error) {
	encodersMu.Lock()
	defer encodersMu.Unlock()
	if e, ok := encoders[key]; ok {
		e.refs++
		return e, nil
	}
	enc, err := load()
	if err != nil {
		return nil, err
	}
	e := &sharedEncoder{enc: enc, refs: 1}
	encoders[key] = e
	return e, nil
}

func release(key string) {
	encodersMu.Lock()
	defer encodersMu.Unlock()
	if e, ok := encoders[key]; ok {
		if e.refs--; e.refs == 0 {
			e.enc.Close()
			delete(encoders, key)
		}
	}
}

// encodeShardFn decodes a shard's images on every core (data.DecodeAll,
// within the run's hostile-input limits), encodes them in batches and
// writes the shard whole (by rename, or one upload): in Parquet one file of
// paths, classes (with Labels) and features; in .npy the features (float32
// [n, dim]) beside paths (.paths.txt) and classes (.labels.txt). A bad
// image is counted and named, or fails the job if Strict.
type encodeShardFn struct {
	withEncoder
	Output string
	Shards int
	Strict bool
	Labels string
	Format string
	labels *labeler
}

func (f *encodeShardFn) Setup(ctx context.Context) error {
	if err := f.withEncoder.Setup(ctx); err != nil {
		return err
	}
	var err error
	f.labels, err = loadLabels(ctx, f.Labels, f.enc.enc.Limits().MaxFileBytes)
	return err
}

func (f *encodeShardFn) ProcessElement(ctx context.Context, shard int, iter func(*string) bool, emit func(shardResult)) error {
	var paths []string
	var p string
	for iter(&p) {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	enc := f.enc.enc
	read := func(i int) ([]byte, error) { return data.ReadFile(ctx, paths[i], enc.Limits()) }
	kept, idx, badImages, err := data.DecodeAll(len(paths), read, func(i int) string { return paths[i] }, enc.Shape, enc.Limits(), !f.Strict)
	if b := (data.BadImage{}); errors.As(err, &b) {
		return fmt.Errorf("%s: %w (without --strict, bad images are counted and left out)", b.Path, b.Err)
	} else if err != nil {
		return err
	}
	good := make([]string, len(idx))
	for j, i := range idx {
		good[j] = paths[i]
	}
	var bad []string
	for _, b := range badImages {
		bad = append(bad, b.Path+"\t"+strings.ReplaceAll(b.Err.Error(), "\n", " "))
	}
	feats, err := enc.EncodePixels(ctx, kept, len(good))
	if err != nil {
		return fmt.Errorf("shard %d: %w", shard, err)
	}
	name := ShardName(f.Format, shard, f.Shards)
	base := store.Join(f.Output, name)
	res := shardResult{Images: len(good), Bad: bad, Shards: []string{name}}
	var classes []string
	if f.labels != nil {
		classes = make([]string, len(good))
		seen := map[string]bool{}
		for i, p := range good {
			c := f.labels.class(p)
			classes[i] = c
			if c == "" {
				res.Unlabelled++
			} else if !seen[c] {
				seen[c] = true
				res.Classes = append(res.Classes, c)
			}
		}
	}
	if f.Format == search.FormatParquet {
		sh := search.Shard{Features: knn.Features{Data: feats, Dim: enc.Dim()}, Paths: good, Labels: classes}
		p := search.Provenance{Run: enc.Run, ConfigHash: enc.ConfigHash, Step: enc.Step, Precision: enc.Compute, Feature: enc.Feature}
		if err := sh.SaveParquet(ctx, base+".parquet", p); err != nil {
			return fmt.Errorf("shard %s: %w", name, err)
		}
		emit(res)
		return nil
	}
	raw, err := npy.Encode(feats, len(good), enc.Dim())
	if err != nil {
		return fmt.Errorf("shard %s: %w", name, err)
	}
	if err := store.WriteFile(ctx, base+".npy", raw); err != nil {
		return err
	}
	if err := store.WriteFile(ctx, base+".paths.txt", lines(good)); err != nil {
		return fmt.Errorf("shard %s: %w", name, err)
	}
	if classes != nil {
		if err := store.WriteFile(ctx, base+".labels.txt", lines(classes)); err != nil {
			return fmt.Errorf("shard %s: %w", name, err)
		}
	}
	emit(res)
	return nil
}

// lines is one element a line ("" for none).
func lines(s []string) []byte {
	if len(s) == 0 {
		return nil
	}
	return []byte(strings.Join(s, "\n") + "\n")
}

// writeManifestFn writes embedding.json (which model made the features, how
// many, which shards) and bad.txt, once every shard is written: last, so
// that it says the folder is whole (in a Parquet folder _embedding.json and
// _bad.txt, names the data stack's readers of the folder skip).
type writeManifestFn struct {
	withEncoder
	Output string
	Inputs []string
	Labels string
	Format string
}

func (f *writeManifestFn) ProcessElement(ctx context.Context, r shardResult) error {
	sort.Strings(r.Shards)
	sort.Strings(r.Bad)
	enc := f.enc.enc
	m := search.Embedding{Kind: search.EmbeddingKind, Run: enc.Run, RunRelative: search.RelativeRun(store.Join(f.Output, search.EmbeddingFileOf(f.Format)), enc.Run), ConfigHash: enc.ConfigHash, Step: enc.Step, Precision: enc.Compute, Format: f.Format, Feature: enc.Feature, Dim: enc.Dim(),
		Images: r.Images, Bad: len(r.Bad), Shards: r.Shards, Inputs: f.Inputs}
	if f.Labels != "" {
		m.Labels, m.Unlabelled = f.Labels, r.Unlabelled
		m.Classes = slices.Compact(slices.Sorted(slices.Values(r.Classes)))
		if m.Classes == nil {
			m.Classes = []string{}
		}
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	bad := strings.Join(r.Bad, "\n")
	if bad != "" {
		bad += "\n"
	}
	if err := store.WriteFile(ctx, store.Join(f.Output, search.BadFileOf(f.Format)), []byte(bad)); err != nil {
		return err
	}
	return store.WriteFile(ctx, store.Join(f.Output, search.EmbeddingFileOf(f.Format)), append(raw, '\n'))
}
