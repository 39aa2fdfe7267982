// Package encoder loads a trained run's encoder for Go programs: images in, z_mean out.
//
// Package encoder loads a trained run's encoder for Go programs: images in,
// z_mean features out. It is what a batch job imports; `runner index`,
// `runner search` and the embedding pipeline are thin layers over it and
// package search.
//
//	enc, err := encoder.Load("/data/runs/fashion_mnist") // any working directory
//	defer enc.Close()
//	feats, err := enc.EncodeFiles(ctx, paths...)          // from any number of goroutines
//
// An Encoder is safe for concurrent use: TensorFlow runs concurrent calls of
// one session in parallel, so goroutines share one Encoder (one copy of the
// weights) rather than loading one each. Importing the package changes
// nothing in the host process; TensorFlow's own log lines at start-up are
// the host's to silence (package tflog, or TF_CPP_MIN_LOG_LEVEL).
package encoder

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"path/filepath"
	"strings"
	"sync"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/store"
	"github.com/infomax/infomax/run"
)

// Encoder is a trained encoder, safe for concurrent use.
type Encoder struct {
	Run        string     // the run folder (or the exported encoder's), absolute; or the URL of a run in an object store
	Step       int64      // the checkpoint's training step
	ConfigHash string     // the manifest's spec hash: which model made the features
	Shape      data.Shape // the input every image is converted to
	// Compute is what the features are computed in, float32 or bfloat16
	// (graph.Model.Compute), and ComputeWhy why: "auto: AMX", "auto:
	// neither AMX nor AVX512_BF16", "WithCompute", and "the model's own"
	// for a model exported in bfloat16, which computes in bfloat16 whatever
	// is asked.
	Compute, ComputeWhy string
	// Feature is which of the model's features the encoder gives: ZMean
	// (the default), Conv or ConvAvg (WithFeatures).
	Feature string

	dim     int // the feature's size
	limits  data.Limits
	batch   int
	session graph.Options
	model   *graph.Model

	mu     sync.RWMutex // held for reading by every call, for writing by Close
	closed bool
}

// ErrClosed is returned by calls on a closed Encoder.
var ErrClosed = errors.New("encoder: closed")

// Option changes how Load sets an Encoder up.
type Option func(*options)

type options struct {
	limits    *data.Limits
	session   *graph.Options
	precision string
	batch     int
	feature   string
}

// The features an Encoder can give (WithFeatures).
const (
	// ZMean is the encoder's code, z_mean: what it is trained to give.
	ZMean = "z_mean"
	// Conv is the last convolutional feature map, before the global max
	// pool (the Deep InfoMax paper's "conv" features), flattened: h·w·c
	// values, row-major h×w×c.
	Conv = "conv"
	// ConvAvg is that map averaged over its h×w positions: c values.
	ConvAvg = "conv_avg"
)

// Features lists the features an Encoder can give.
var Features = []string{ZMean, Conv, ConvAvg}

// sessionOver is base (the run's threads and device, or none) with
// WithSession and WithCompute applied, WithCompute's auto (the default)
// resolved for this CPU; and why the precision is what it is.
func (o options) sessionOver(base graph.Options) (graph.Options, string, error) {
	if o.session != nil {
		base = *o.session
	}
	p, why := o.precision, "WithCompute"
	switch {
	case p == "" && o.session != nil && base.Compute != "":
		p, why = base.Compute, "WithSession"
	case p == "" || p == config.PrecisionAuto:
		auto, reason, err := config.AutoPrecision()
		if err != nil {
			return base, "", fmt.Errorf("load encoder: precision auto: %w", err)
		}
		p, why = auto, reason
	}
	switch p {
	case "float32", "bfloat16":
	default:
		return base, "", fmt.Errorf("load encoder: precision %q: want auto, float32 or bfloat16", p)
	}
	base.Compute = p
	return base, why, nil
}

// WithLimits bounds what one image may make EncodeFiles, EncodeBytes and
// EncodeReader allocate (default: the run's data.max_* keys).
func WithLimits(l data.Limits) Option { return func(o *options) { o.limits = &l } }

// WithSession sets up the TensorFlow session (default: the run's threads and
// device; a Compute of "bfloat16" encodes in bfloat16 where oneDNN can,
// unless WithCompute says otherwise).
func WithSession(s graph.Options) Option { return func(o *options) { o.session = &s } }

// WithCompute sets what the encoder computes in: auto (the default:
// bfloat16 where the CPU computes it natively, AMX or AVX512_BF16, else
// float32), float32 (as exported), or bfloat16 (a float32 model through
// oneDNN's rewrite, variables float32). bfloat16 features are float32's to
// bfloat16's rounding (graph's TestBfloat16IsFloat32ToItsAccuracy: cosine
// above 0.999). A model trained with model.precision bfloat16 computes its
// convolutions in bfloat16 whatever is asked. Encoder.Compute says what
// the features were computed in.
func WithCompute(p string) Option { return func(o *options) { o.precision = p } }

// WithFeatures sets which features the encoder gives: ZMean (the
// default), Conv or ConvAvg. The last two need the model's encode_conv
// signature (every export has it now; graph.ErrNoConv for one from before).
func WithFeatures(f string) Option { return func(o *options) { o.feature = f } }

// WithBatchSize sets how many images go through the network at once
// (default: the run's eval.batch_size).
func WithBatchSize(n int) Option { return func(o *options) { o.batch = n } }

// Load opens a run folder (from any working directory; a read-only copy
// will do) and restores its latest checkpoint; or a trained encoder exported
// on its own (`runner export --run-dir RUN --out DIR`: its weights inside,
// the default limits, threads and batch size). A run in an object store
// (s3://bucket/prefix, gs://bucket/prefix; with package buckets linked)
// is copied once into a local cache (run.Fetch) and read there. A
// cancelled ctx stops it before the model loads.
func Load(ctx context.Context, runDir string, opts ...Option) (*Encoder, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load encoder %s: %w", runDir, err)
	}
	url := ""
	if store.IsURL(runDir) {
		local, err := run.Fetch(ctx, runDir)
		if err != nil {
			return nil, fmt.Errorf("load encoder: %w", err)
		}
		url, runDir = runDir, local
	}
	if man, err := graph.ReadManifest(runDir); err == nil && man.Kind == graph.KindEncoder {
		return loadExport(runDir, man, o)
	}
	r, err := run.Open(runDir)
	if err != nil {
		return nil, fmt.Errorf("load encoder: %w", err)
	}
	session, why, err := o.sessionOver(r.Session())
	if err != nil {
		return nil, err
	}
	m, err := r.LoadModel(session)
	if err != nil {
		return nil, fmt.Errorf("load encoder: %w", err)
	}
	e := &Encoder{Run: cmp.Or(url, r.Dir), Step: r.State.Step, ConfigHash: m.Manifest.ConfigHash, limits: r.Config.Data.Limits(), batch: r.Config.Eval.BatchSize,
		session: session, model: m}
	return e.finish(o, why)
}

// loadExport loads a trained encoder exported on its own, with the
// defaults' limits and batch size.
func loadExport(dir string, man *graph.Manifest, o options) (*Encoder, error) {
	session, why, err := o.sessionOver(graph.Options{})
	if err != nil {
		return nil, err
	}
	m, err := graph.Load(dir, session)
	if err != nil {
		return nil, fmt.Errorf("load encoder: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		m.Close()
		return nil, err
	}
	d := config.Defaults()
	e := &Encoder{Run: abs, Step: man.Step, ConfigHash: man.ConfigHash, limits: d.Data.Limits(), batch: d.Eval.BatchSize, session: session, model: m}
	return e.finish(o, why)
}

func (e *Encoder) finish(o options, why string) (*Encoder, error) {
	m := e.model
	e.Compute, e.ComputeWhy = m.Compute, why
	if m.Manifest.Precision == "bfloat16" {
		e.ComputeWhy = "the model's own: trained in bfloat16"
	}
	in := m.Manifest.Input.Shape
	e.Shape = data.Shape{H: in[0], W: in[1], C: in[2]}
	e.Feature = cmp.Or(o.feature, ZMean)
	switch e.Feature {
	case ZMean:
		e.dim = m.Manifest.FeatureDim
	case Conv, ConvAvg:
		if m.ConvDim() == 0 {
			m.Close()
			return nil, fmt.Errorf("load encoder: features %s: %s: %w", e.Feature, e.Run, graph.ErrNoConv)
		}
		e.dim = m.ConvDim()
		if e.Feature == ConvAvg {
			e.dim = m.Manifest.FeatureMap[2]
		}
	default:
		m.Close()
		return nil, fmt.Errorf("load encoder: features %q: want %s", e.Feature, strings.Join(Features, ", "))
	}
	if o.limits != nil {
		e.limits = *o.limits
	}
	if o.batch != 0 {
		e.batch = o.batch
	}
	if e.batch < 1 {
		m.Close()
		return nil, fmt.Errorf("load encoder: batch size %d: want at least 1", e.batch)
	}
	return e, nil
}

// Dim is the feature size: z_mean's, the flattened map's h·w·c (Conv) or
// its channels c (ConvAvg).
func (e *Encoder) Dim() int { return e.dim }

// Session is the options of the encoder's TensorFlow session (the run's
// threads and device, or WithSession's), for other sessions working beside
// it (search.Index.SearchWith); without its Compute, so that they compute
// in float32 (a search's scores exact).
func (e *Encoder) Session() graph.Options {
	s := e.session
	s.Compute = ""
	return s
}

// Limits are the bounds each image file is held to.
func (e *Encoder) Limits() data.Limits { return e.limits }

// Close releases the TensorFlow session once every call in progress has
// returned; later calls return ErrClosed. Closing twice is harmless.
func (e *Encoder) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	return e.model.Close()
}

// use runs f unless the encoder is closed.
func (e *Encoder) use(f func() error) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return ErrClosed
	}
	return f()
}

// EncodePixels returns the features of n packed uint8 images of the
// encoder's Shape (n·H·W·C bytes, row-major HWC), row-major [n, Dim()]. A
// cancelled ctx stops it between batches.
func (e *Encoder) EncodePixels(ctx context.Context, pixels []byte, n int) ([]float32, error) {
	s := e.Shape
	if per := s.H * s.W * s.C; n < 0 || len(pixels) != n*per {
		return nil, fmt.Errorf("encode: %d bytes for %d images of %dx%dx%d (%d bytes each): convert other sizes or channel counts with EncodeImages",
			len(pixels), n, s.W, s.H, s.C, per)
	}
	if n == 0 {
		return []float32{}, nil
	}
	var out []float32
	err := e.use(func() (err error) {
		switch e.Feature {
		case Conv:
			out, err = e.model.EncodeConvAll(ctx, pixels, e.batch)
		case ConvAvg:
			out, err = e.convAvg(ctx, pixels, n)
		default:
			out, err = e.model.EncodeAll(ctx, pixels, e.batch)
		}
		return err
	})
	return out, err
}

// convAvg is the last convolutional map of n images averaged over its
// positions, a batch at a time (no more than a batch's maps held at once).
func (e *Encoder) convAvg(ctx context.Context, pixels []byte, n int) ([]float32, error) {
	per, c := len(pixels)/n, e.dim
	out := make([]float32, n*c)
	for lo := 0; lo < n; lo += e.batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+e.batch, n)
		maps, err := e.model.EncodeConv(pixels[lo*per : hi*per])
		if err != nil {
			return nil, err
		}
		graph.AveragePositions(out[lo*c:hi*c], maps, c)
	}
	return out, nil
}

// EncodeImages converts images of any size and colour model to the
// encoder's input (as training data is: resized with an antialiasing filter)
// and returns their features, row-major [len(imgs), Dim()].
func (e *Encoder) EncodeImages(ctx context.Context, imgs []image.Image) ([]float32, error) {
	per := e.Shape.H * e.Shape.W * e.Shape.C
	pixels := make([]byte, len(imgs)*per)
	for i, img := range imgs {
		if img == nil || img.Bounds().Empty() {
			return nil, fmt.Errorf("encode: image %d of %d is nil or empty", i, len(imgs))
		}
		data.ImageInto(pixels[i*per:(i+1)*per], img, e.Shape)
	}
	return e.EncodePixels(ctx, pixels, len(imgs))
}

// EncodeFiles reads image files (JPEG, PNG, GIF, BMP, WebP; or archive
// members named archive.tar:member), decodes them on every core and returns
// their features, row-major [len(paths), Dim()]. Each header is checked
// against Limits before any pixel is decoded. A file that is not an image,
// is corrupt or is over the limits is an error that names it, a
// data.BadImage (errors.As); EncodeFilesSkipBad leaves such files out.
func (e *Encoder) EncodeFiles(ctx context.Context, paths ...string) ([]float32, error) {
	return allGood(e.EncodeFilesSkipBad(ctx, paths...))
}

// allGood is a Result's features, or its first bad image as the error.
func allGood(res *Result, err error) ([]float32, error) {
	if err != nil {
		return nil, err
	}
	if len(res.Bad) > 0 {
		return nil, fmt.Errorf("encode: %w", res.Bad[0])
	}
	return res.Features, nil
}

// Result is what EncodeFilesSkipBad and EncodeBytesSkipBad return: the
// features of the images that decoded, which inputs they are, and why the
// others were left out.
type Result struct {
	Features []float32       // row-major [len(Kept), Dim()]
	Kept     []int           // the input index of each row
	Bad      []data.BadImage // the inputs left out, in input order
}

// EncodeFilesSkipBad is EncodeFiles that leaves out the files that fail,
// each reported in Result.Bad with its path and reason.
func (e *Encoder) EncodeFilesSkipBad(ctx context.Context, paths ...string) (*Result, error) {
	return e.decodeAndEncode(ctx, len(paths), func(i int) ([]byte, error) { return data.ReadFile(ctx, paths[i], e.limits) },
		func(i int) string { return paths[i] })
}

// EncodeBytes decodes encoded images held in memory (the bytes of image
// files) on every core and returns their features, row-major [len(files),
// Dim()]. A bad image is an error naming its index, a data.BadImage.
func (e *Encoder) EncodeBytes(ctx context.Context, files ...[]byte) ([]float32, error) {
	return allGood(e.EncodeBytesSkipBad(ctx, files...))
}

// EncodeBytesSkipBad is EncodeBytes that leaves out the images that fail,
// each reported in Result.Bad (its Path is "image N").
func (e *Encoder) EncodeBytesSkipBad(ctx context.Context, files ...[]byte) (*Result, error) {
	return e.decodeAndEncode(ctx, len(files), func(i int) ([]byte, error) { return files[i], nil },
		func(i int) string { return fmt.Sprintf("image %d", i) })
}

// EncodeReader reads one encoded image from r (within Limits' file size)
// and returns its features.
func (e *Encoder) EncodeReader(ctx context.Context, r io.Reader) ([]float32, error) {
	raw, err := e.limits.ReadAll(r, "the image")
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return e.EncodeBytes(ctx, raw)
}

func (e *Encoder) decodeAndEncode(ctx context.Context, n int, read func(int) ([]byte, error), where func(int) string) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pixels, kept, bad, err := data.DecodeAll(n, read, where, e.Shape, e.limits, true)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	feats, err := e.EncodePixels(ctx, pixels, len(kept))
	if err != nil {
		return nil, err
	}
	return &Result{Features: feats, Kept: kept, Bad: bad}, nil
}
