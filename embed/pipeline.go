package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/local"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/encoder"
	"github.com/infomax/infomax/internal/fsutil"
	"github.com/infomax/infomax/internal/npy"
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
	// Precision encodes in float32 or bfloat16 ("": the model's own).
	Precision string
	Inputs    []string // glob patterns, read through Beam's filesystems (local ones imported)
	Output    string   // the output folder (local)
	Shards    int      // images are spread over this many shards by a hash of their path
	Strict    bool     // a bad image fails the job instead of being counted
}

// shardResult is what shards wrote; sumResults adds them up for the manifest.
type shardResult struct {
	Images int
	Bad    []string // "path<TAB>reason"
	Shards []string
}

func sumResults(a, b shardResult) shardResult {
	return shardResult{Images: a.Images + b.Images, Bad: append(a.Bad, b.Bad...), Shards: append(a.Shards, b.Shards...)}
}

// Build adds the embedding pipeline to s: match the inputs, keep the images,
// spread them over o.Shards by a hash of the path (so a rerun, or a retried
// bundle, writes the same shards), encode each shard and write it whole,
// then the manifest.
func Build(s beam.Scope, o Options) {
	globs := beam.Reshuffle(s, beam.CreateList(s, o.Inputs))
	paths := beam.ParDo(s, listImages, globs)
	grouped := beam.GroupByKey(s, beam.ParDo(s, &shardKeyFn{Shards: o.Shards}, paths))
	results := beam.ParDo(s, &encodeShardFn{withEncoder: withEncoder{RunDir: o.RunDir, Precision: o.Precision}, Output: o.Output, Shards: o.Shards, Strict: o.Strict}, grouped)
	beam.ParDo0(s, &writeManifestFn{withEncoder: withEncoder{RunDir: o.RunDir, Precision: o.Precision}, Output: o.Output, Inputs: o.Inputs}, beam.Combine(s, sumResults, results))
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

// ShardName is the base name of shard i of n.
func ShardName(i, n int) string { return fmt.Sprintf("shard-%05d-of-%05d", i, n) }

// withEncoder gives a DoFn the shared encoder of its run from Setup to
// Teardown.
type withEncoder struct {
	RunDir    string
	Precision string
	enc       *sharedEncoder
}

func (w *withEncoder) Setup() error {
	var err error
	w.enc, err = acquire(w.RunDir, w.Precision)
	return err
}

func (w *withEncoder) Teardown() { release(w.RunDir, w.Precision) }

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

func acquire(runDir, precision string) (*sharedEncoder, error) {
	encodersMu.Lock()
	defer encodersMu.Unlock()
	key := runDir + "\x00" + precision
	if e, ok := encoders[key]; ok {
		e.refs++
		return e, nil
	}
	enc, err := encoder.Load(runDir, encoder.WithPrecision(precision))
	if err != nil {
		return nil, err
	}
	e := &sharedEncoder{enc: enc, refs: 1}
	encoders[key] = e
	return e, nil
}

func release(runDir, precision string) {
	encodersMu.Lock()
	defer encodersMu.Unlock()
	key := runDir + "\x00" + precision
	if e, ok := encoders[key]; ok {
		if e.refs--; e.refs == 0 {
			e.enc.Close()
			delete(encoders, key)
		}
	}
}

// encodeShardFn decodes a shard's images on every core (data.DecodeAll,
// within the run's hostile-input limits), encodes them in batches and writes the shard's
// features (.npy, float32 [n, dim]) and paths (.paths.txt), each by rename
// when whole. A bad image is counted and named, or fails the job if Strict.
type encodeShardFn struct {
	withEncoder
	Output string
	Shards int
	Strict bool
}

func (f *encodeShardFn) ProcessElement(ctx context.Context, shard int, iter func(*string) bool, emit func(shardResult)) error {
	var paths []string
	var p string
	for iter(&p) {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	enc := f.enc.enc
	read := func(i int) ([]byte, error) { return readFile(ctx, paths[i], enc.Limits()) }
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
	name := ShardName(shard, f.Shards)
	base := filepath.Join(f.Output, name)
	if err := npy.Write(base+".npy", feats, len(good), enc.Dim()); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(base+".paths.txt", []byte(strings.Join(good, "\n")+"\n")); err != nil {
		return fmt.Errorf("shard %s: %w", name, err)
	}
	emit(shardResult{Images: len(good), Bad: bad, Shards: []string{name}})
	return nil
}

// readFile reads a file on any Beam filesystem, within lim.MaxFileBytes.
func readFile(ctx context.Context, path string, lim data.Limits) ([]byte, error) {
	fs, err := filesystem.New(ctx, path)
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	r, err := fs.OpenRead(ctx, path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return lim.ReadAll(r, "the file")
}

// writeManifestFn writes manifest.json (which model made the features, how
// many, which shards) and bad.txt, once every shard is written.
type writeManifestFn struct {
	withEncoder
	Output string
	Inputs []string
}

func (f *writeManifestFn) ProcessElement(ctx context.Context, r shardResult) error {
	sort.Strings(r.Shards)
	sort.Strings(r.Bad)
	enc := f.enc.enc
	m := search.Manifest{Run: enc.Run, RunRelative: search.RelativeRun(filepath.Join(f.Output, search.ManifestFile), enc.Run), ConfigHash: enc.ConfigHash, Step: enc.Step, Dim: enc.Dim(),
		Images: r.Images, Bad: len(r.Bad), Shards: r.Shards, Inputs: f.Inputs}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	bad := strings.Join(r.Bad, "\n")
	if bad != "" {
		bad += "\n"
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(f.Output, "bad.txt"), []byte(bad)); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(f.Output, search.ManifestFile), append(raw, '\n'))
}
