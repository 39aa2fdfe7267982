// Package graph loads an exported InfoMax SavedModel through the C API as a typed value.
//
// Package graph loads an exported InfoMax SavedModel and its manifest through
// TensorFlow's C API (graft) and offers it as a typed Go value: TrainStep,
// Encode, Save and Restore.
//
// Every tensor is found through the signature keys that the manifest names,
// resolved once at load; the hot path builds one input tensor and calls
// Session.Run. Checkpoints go through the SavedModel's own saver_def, so they
// cover every variable, the optimizer's slots and the step counter, and are
// ordinary TensorFlow checkpoints that Python's tf.train.Checkpoint can read.
package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	tf "github.com/wamuir/graft/tensorflow"
	corepb "github.com/wamuir/graft/tensorflow/core/protobuf/for_core_protos_go_proto"
	"google.golang.org/protobuf/proto"

	"github.com/infomax/infomax/internal/tfutil"
)

const (
	sigTrain      = "train_step"
	sigTrainNoise = "train_step_with_noise"
	sigEncode     = "encode"
	sigEncodeConv = "encode_conv"
	sigSetLR      = "set_learning_rate"
)

// Options set up the TensorFlow session.
type Options struct {
	// ConfigHash, when not empty, must equal the manifest's config_hash.
	ConfigHash string
	// IntraOpThreads and InterOpThreads size TensorFlow's thread pools (0: its default).
	IntraOpThreads, InterOpThreads int
	// Device is "auto" or "" (a GPU if TensorFlow sees one), "cpu" (hide any
	// GPU) or "gpu" (an error without one).
	Device string
	// Compute "bfloat16" has TensorFlow's graph optimizer rewrite the
	// session's graphs to compute in bfloat16 where oneDNN has bfloat16
	// kernels (auto_mixed_precision_onednn_bfloat16), variables and their
	// updates staying float32: a way to encode a float32 model in bfloat16.
	// "" or "float32": as exported (a model exported with model.precision
	// bfloat16 computes its convolutions in bfloat16 by itself).
	Compute string
	// XLA clusters the graph for XLA's CPU compiler (global_jit_level ON_1;
	// on a CPU it also needs TF_XLA_FLAGS=--tf_xla_cpu_global_jit). A lever
	// for benchmarks, not used by the runner (docs/speed.md).
	XLA bool
}

// ErrNoGPU means device gpu was asked for and TensorFlow sees none.
var ErrNoGPU = errors.New(`device: gpu, but TensorFlow sees no GPU. With the CPU build, install the GPU one: ` +
	"`make setup TF_BUILD=gpu` (the \"tensorflow[and-cuda]\" 2.18 wheel), or an official GPU libtensorflow 2.18 through TF_DIR. " +
	"With a GPU build, check the driver (nvidia-smi) and that the wheel's CUDA libraries are on LD_LIBRARY_PATH (see docs/reference.md, \"Devices\"). " +
	"Or set device: auto or cpu")

// Model is a loaded InfoMax SavedModel. Its methods are not safe for
// concurrent use.
type Model struct {
	Dir      string
	Manifest *Manifest

	saved *tf.SavedModel
	// Devices are the devices the session sees; Using is "GPU" or "CPU".
	Devices []tf.Device
	Using   string
	// Compute is what the model computes in: bfloat16 when it was
	// exported so (the manifest's precision) or when Options.Compute
	// rewrote it, else float32. What a report, an index or an embedding
	// records.
	Compute string

	trainIn   tf.Output
	trainOut  []tf.Output // outputKeys(), the same for train_step_with_noise
	noiseIn   [4]tf.Output
	noiseOut  []tf.Output
	encodeIn  tf.Output
	encodeOut tf.Output
	// convIn and convOut are the encode_conv signature's (zero Outputs in
	// a model exported before it, or in a trained encoder on its own).
	convIn, convOut tf.Output
	convDim         int
	lrIn            tf.Output
	lrOut           tf.Output

	saveFilename tf.Output
	saveTensor   tf.Output
	restoreOp    *tf.Operation
}

// Losses is what one training step returns: the weighted total, each term the
// manifest lists (computed before the update), the new step counter and the
// learning rate.
type Losses struct {
	Step         int64
	Loss         float64
	Terms        map[string]float64
	LearningRate float64
}

// NonFinite names the first of the loss and its terms that is NaN or
// infinite, or returns "".
func (l Losses) NonFinite(terms []string) string {
	if math.IsNaN(l.Loss) || math.IsInf(l.Loss, 0) {
		return "loss"
	}
	for _, t := range terms {
		if v := l.Terms[t]; math.IsNaN(v) || math.IsInf(v, 0) {
			return t
		}
	}
	return ""
}

// Load opens the SavedModel in dir. It checks the manifest against the graph
// and, if opts.ConfigHash is set, against the config.
func Load(dir string, opts Options) (*Model, error) {
	m, err := load(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("load savedmodel %s: %w", dir, err)
	}
	return m, nil
}

func load(dir string, opts Options) (*Model, error) {
	man, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	if opts.ConfigHash != "" && opts.ConfigHash != man.ConfigHash {
		return nil, fmt.Errorf("%w: the manifest's config hash is %.12s, the config's is %.12s", ErrStale, man.ConfigHash, opts.ConfigHash)
	}
	var saverDef *corepb.SaverDef
	if man.Kind != KindEncoder {
		if saverDef, err = readSaverDef(dir); err != nil {
			return nil, err
		}
	}
	so, err := opts.SessionOptions()
	if err != nil {
		return nil, err
	}
	saved, err := tf.LoadSavedModel(dir, man.Tags, so)
	if err != nil {
		return nil, err
	}
	mod := &Model{Dir: dir, Manifest: man, saved: saved, Using: "CPU", Compute: "float32"}
	if man.Precision == "bfloat16" || opts.Compute == "bfloat16" {
		mod.Compute = "bfloat16"
	}
	if err := mod.resolve(saverDef); err != nil {
		saved.Session.Close()
		return nil, err
	}
	if mod.Devices, err = saved.Session.ListDevices(); err != nil {
		saved.Session.Close()
		return nil, err
	}
	for _, d := range mod.Devices {
		if d.Type == "GPU" {
			mod.Using = "GPU"
		}
	}
	if opts.Device == "gpu" && mod.Using != "GPU" {
		saved.Session.Close()
		return nil, ErrNoGPU
	}
	return mod, nil
}

// SessionOptions are opts as TensorFlow's session options (its ConfigProto):
// thread pools, a hidden GPU for device cpu, the precision rewrite, XLA.
func (opts Options) SessionOptions() (*tf.SessionOptions, error) {
	cp := &corepb.ConfigProto{
		IntraOpParallelismThreads: int32(opts.IntraOpThreads),
		InterOpParallelismThreads: int32(opts.InterOpThreads),
	}
	switch opts.Device {
	case "", "auto", "gpu":
	case "cpu":
		cp.DeviceCount = map[string]int32{"GPU": 0}
	default:
		return nil, fmt.Errorf("device %q: want auto, cpu or gpu", opts.Device)
	}
	switch opts.Compute {
	case "", "float32":
	case "bfloat16":
		cp.GraphOptions = &corepb.GraphOptions{RewriteOptions: &corepb.RewriterConfig{AutoMixedPrecisionOnednnBfloat16: corepb.RewriterConfig_ON}}
	default:
		return nil, fmt.Errorf("compute %q: want float32 or bfloat16", opts.Compute)
	}
	if opts.XLA {
		if cp.GraphOptions == nil {
			cp.GraphOptions = &corepb.GraphOptions{}
		}
		cp.GraphOptions.OptimizerOptions = &corepb.OptimizerOptions{GlobalJitLevel: corepb.OptimizerOptions_ON_1}
	}
	cfg, err := proto.Marshal(cp)
	if err != nil {
		return nil, err
	}
	return &tf.SessionOptions{Config: cfg}, nil
}

// NewSession opens a session on a graph built in Go (kNN's, for instance)
// with opts: every TensorFlow session of the project is made here or in
// Load, LoadSaved, so that a run's threads and device reach all of them.
func NewSession(g *tf.Graph, opts Options) (*tf.Session, error) {
	so, err := opts.SessionOptions()
	if err != nil {
		return nil, err
	}
	return tf.NewSession(g, so)
}

// LoadSaved loads a SavedModel other than an InfoMax model (the linear
// probe's) in a session with opts.
func LoadSaved(dir string, tags []string, opts Options) (*tf.SavedModel, error) {
	so, err := opts.SessionOptions()
	if err != nil {
		return nil, err
	}
	return tf.LoadSavedModel(dir, tags, so)
}

// readSaverDef reads the saver_def of the SavedModel's single MetaGraph.
func readSaverDef(dir string) (*corepb.SaverDef, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "saved_model.pb"))
	if err != nil {
		return nil, err
	}
	var sm corepb.SavedModel
	if err := proto.Unmarshal(raw, &sm); err != nil {
		return nil, fmt.Errorf("saved_model.pb: %w", err)
	}
	if len(sm.MetaGraphs) != 1 || sm.MetaGraphs[0].SaverDef == nil {
		return nil, errors.New("saved_model.pb: want one MetaGraph with a saver_def")
	}
	return sm.MetaGraphs[0].SaverDef, nil
}

// resolve finds every tensor the model uses, checking the manifest against
// the graph's own signatures.
func (m *Model) resolve(saver *corepb.SaverDef) error {
	var err error
	if m.encodeIn, err = m.tensor(sigEncode, "images", true); err != nil {
		return err
	}
	if m.encodeOut, err = m.tensor(sigEncode, "z_mean", false); err != nil {
		return err
	}
	if sig, ok := m.Manifest.Signatures[sigEncodeConv]; ok {
		if m.convIn, err = m.tensor(sigEncodeConv, "images", true); err != nil {
			return err
		}
		if m.convOut, err = m.tensor(sigEncodeConv, "conv", false); err != nil {
			return err
		}
		// The last convolutions keep the local map's size: [-1, h, w, c] as
		// feature_map says (a check on the manifest before any allocation).
		shape, fm := sig.Outputs["conv"].Shape, m.Manifest.FeatureMap
		if len(shape) != 4 || len(fm) != 3 || shape[1] != int64(fm[0]) || shape[2] != int64(fm[1]) || shape[3] != int64(fm[2]) {
			return fmt.Errorf("manifest: signature %q output \"conv\" has shape %v, feature_map %v: want [-1 h w c] of the feature map: export again", sigEncodeConv, shape, fm)
		}
		m.convDim = fm[0] * fm[1] * fm[2]
	}
	if saver == nil { // a trained encoder on its own: encode (and encode_conv) only
		return nil
	}
	in, err := m.tensor(sigTrain, "images", true)
	if err != nil {
		return err
	}
	m.trainIn = in
	for _, key := range m.outputKeys() {
		out, err := m.tensor(sigTrain, key, false)
		if err != nil {
			return err
		}
		m.trainOut = append(m.trainOut, out)
		if out, err = m.tensor(sigTrainNoise, key, false); err != nil {
			return err
		}
		m.noiseOut = append(m.noiseOut, out)
	}
	for i, key := range []string{"images", "eps", "perm_global", "perm_local"} {
		if m.noiseIn[i], err = m.tensor(sigTrainNoise, key, true); err != nil {
			return err
		}
	}
	if m.lrIn, err = m.tensor(sigSetLR, "learning_rate", true); err != nil {
		return err
	}
	if m.lrOut, err = m.tensor(sigSetLR, "learning_rate", false); err != nil {
		return err
	}
	if m.saveFilename, err = m.output(saver.FilenameTensorName); err != nil {
		return fmt.Errorf("saver_def filename tensor: %w", err)
	}
	if m.saveTensor, err = m.output(saver.SaveTensorName); err != nil {
		return fmt.Errorf("saver_def save tensor: %w", err)
	}
	if m.restoreOp = m.saved.Graph.Operation(saver.RestoreOpName); m.restoreOp == nil {
		return fmt.Errorf("saver_def restore op %q is not in the graph", saver.RestoreOpName)
	}
	return nil
}

func (m *Model) outputKeys() []string {
	return append(append([]string{"loss"}, m.Manifest.LossTerms...), "step", "learning_rate")
}

// tensor resolves one signature tensor by key and checks that the manifest
// and the SavedModel's signature agree on its name and dtype.
func (m *Model) tensor(sig, key string, input bool) (tf.Output, error) {
	want, ok := m.Manifest.Signatures[sig].Inputs[key]
	got, ok2 := m.saved.Signatures[sig].Inputs[key]
	kind := "input"
	if !input {
		want, ok = m.Manifest.Signatures[sig].Outputs[key]
		got, ok2 = m.saved.Signatures[sig].Outputs[key]
		kind = "output"
	}
	switch {
	case !ok:
		return tf.Output{}, fmt.Errorf("manifest: signature %q has no %s %q", sig, kind, key)
	case !ok2:
		return tf.Output{}, fmt.Errorf("saved_model.pb: signature %q has no %s %q (the manifest lists it: export again)", sig, kind, key)
	case got.Name != want.Name || dtypeName(got.DType) != want.DType:
		return tf.Output{}, fmt.Errorf("signature %q %s %q: manifest says %s %s, the graph has %s %s: export again",
			sig, kind, key, want.Name, want.DType, got.Name, dtypeName(got.DType))
	}
	return m.output(want.Name)
}

func (m *Model) output(name string) (tf.Output, error) { return tfutil.Output(m.saved.Graph, name) }

func dtypeName(dt tf.DataType) string {
	switch dt {
	case tf.Uint8:
		return "uint8"
	case tf.Float:
		return "float32"
	case tf.Int32:
		return "int32"
	case tf.Int64:
		return "int64"
	case tf.String:
		return "string"
	}
	return fmt.Sprintf("dtype(%d)", dt)
}

// Close releases the session.
func (m *Model) Close() error { return m.saved.Session.Close() }

// images builds a uint8 [N,H,W,C] tensor from packed pixels.
func (m *Model) images(pixels []byte) (*tf.Tensor, error) {
	per := m.Manifest.ImageBytes()
	s := m.Manifest.Input.Shape
	if len(pixels) == 0 || len(pixels)%per != 0 {
		return nil, fmt.Errorf("batch of %d bytes is not a whole number of %d×%d×%d uint8 images (%d bytes each)", len(pixels), s[0], s[1], s[2], per)
	}
	shape := []int64{int64(len(pixels) / per), int64(s[0]), int64(s[1]), int64(s[2])}
	return tf.ReadTensor(tf.Uint8, shape, bytes.NewReader(pixels))
}

// ErrEncoderOnly means a training call on a trained encoder exported on
// its own (KindEncoder), which has no training step, optimizer or saver.
var ErrEncoderOnly = errors.New("a trained encoder exported on its own encodes only: train from the run folder")

func (m *Model) trainable() error {
	if m.Manifest.Kind == KindEncoder {
		return fmt.Errorf("%s: %w", m.Dir, ErrEncoderOnly)
	}
	return nil
}

// TrainStep runs one training step on a batch of packed uint8 images
// (N·H·W·C bytes, N >= 2).
func (m *Model) TrainStep(pixels []byte) (Losses, error) {
	if err := m.trainable(); err != nil {
		return Losses{}, err
	}
	x, err := m.images(pixels)
	if err != nil {
		return Losses{}, fmt.Errorf("train step: %w", err)
	}
	defer tfutil.Free(x)
	if n := x.Shape()[0]; n < 2 {
		return Losses{}, fmt.Errorf("train step: a batch needs at least 2 images to shuffle, got %d", n)
	}
	out, err := m.saved.Session.Run(map[tf.Output]*tf.Tensor{m.trainIn: x}, m.trainOut, nil)
	defer tfutil.Free(out...)
	if err != nil {
		return Losses{}, fmt.Errorf("train step: %w", runError(err))
	}
	return m.losses(out)
}

func (m *Model) losses(out []*tf.Tensor) (Losses, error) {
	keys := m.outputKeys()
	l := Losses{Terms: make(map[string]float64, len(keys)-3)}
	for i, key := range keys {
		switch v := out[i].Value().(type) {
		case float32:
			switch key {
			case "loss":
				l.Loss = float64(v)
			case "learning_rate":
				l.LearningRate = float64(v)
			default:
				l.Terms[key] = float64(v)
			}
		case int64:
			l.Step = v
		default:
			return Losses{}, fmt.Errorf("train step: output %q is %T, want a scalar", key, v)
		}
	}
	return l, nil
}

// TrainStepWithNoise is TrainStep with the random draws given: eps
// [N, FeatureDim] for the reparameterisation and the two permutations that
// make negatives. Tests use it to replay or to force a value.
func (m *Model) TrainStepWithNoise(pixels []byte, eps []float32, permGlobal, permLocal []int32) (Losses, error) {
	if err := m.trainable(); err != nil {
		return Losses{}, err
	}
	x, err := m.images(pixels)
	if err != nil {
		return Losses{}, fmt.Errorf("train step: %w", err)
	}
	defer tfutil.Free(x)
	n := x.Shape()[0]
	if int64(len(eps)) != n*int64(m.Manifest.FeatureDim) || int64(len(permGlobal)) != n || int64(len(permLocal)) != n {
		return Losses{}, fmt.Errorf("train step: %d images need %d×%d eps and two permutations of %d", n, n, m.Manifest.FeatureDim, n)
	}
	e, err := tfutil.FromFloat32s(eps, n, int64(m.Manifest.FeatureDim))
	if err != nil {
		return Losses{}, err
	}
	defer tfutil.Free(e)
	pg, err := tf.NewTensor(permGlobal)
	if err != nil {
		return Losses{}, err
	}
	defer tfutil.Free(pg)
	pl, err := tf.NewTensor(permLocal)
	if err != nil {
		return Losses{}, err
	}
	defer tfutil.Free(pl)
	feeds := map[tf.Output]*tf.Tensor{m.noiseIn[0]: x, m.noiseIn[1]: e, m.noiseIn[2]: pg, m.noiseIn[3]: pl}
	out, err := m.saved.Session.Run(feeds, m.noiseOut, nil)
	defer tfutil.Free(out...)
	if err != nil {
		return Losses{}, fmt.Errorf("train step: %w", runError(err))
	}
	return m.losses(out)
}

// SetLearningRate changes Adam's learning rate (saved in checkpoints).
func (m *Model) SetLearningRate(lr float64) error {
	if err := m.trainable(); err != nil {
		return err
	}
	v, err := tf.NewTensor(float32(lr))
	if err != nil {
		return err
	}
	defer tfutil.Free(v)
	out, err := m.saved.Session.Run(map[tf.Output]*tf.Tensor{m.lrIn: v}, []tf.Output{m.lrOut}, nil)
	tfutil.Free(out...)
	if err != nil {
		return fmt.Errorf("set learning rate: %w", runError(err))
	}
	return nil
}

// Encode returns z_mean for a batch of packed uint8 images, row-major
// [N, FeatureDim], with BatchNorm in inference mode.
func (m *Model) Encode(pixels []byte) ([]float32, error) {
	return m.run("encode", m.encodeIn, m.encodeOut, pixels)
}

// ErrNoConv means the model has no encode_conv signature: a SavedModel
// exported before it (the exporter's training models and `runner export
// --run-dir`'s trained encoders have it now).
var ErrNoConv = errors.New("the model has no encode_conv signature (exported before it): export the run's spec again into a new run folder, or a trained encoder again with `runner export --run-dir`, to get it")

// ConvDim is the size of the last convolutional feature map (h·w·c) that
// EncodeConv returns per image; 0 without an encode_conv signature.
func (m *Model) ConvDim() int { return m.convDim }

// EncodeConv returns the encoder's last convolutional feature map (before
// the global max pool; the Deep InfoMax paper's "conv" features) for a batch
// of packed uint8 images, row-major [N, ConvDim] (each row h×w×c), with
// BatchNorm in inference mode.
func (m *Model) EncodeConv(pixels []byte) ([]float32, error) {
	if m.convDim == 0 {
		return nil, fmt.Errorf("encode_conv: %s: %w", m.Dir, ErrNoConv)
	}
	return m.run("encode_conv", m.convIn, m.convOut, pixels)
}

// AveragePositions writes into dst, c values a map, each convolutional map
// of maps averaged over its positions, summed in float64. maps holds
// len(dst)/c maps of h×w positions of c channels each (row-major h×w×c,
// as EncodeConv gives them).
func AveragePositions(dst, maps []float32, c int) {
	n := len(dst) / c
	if n == 0 {
		return
	}
	per := len(maps) / n
	hw := per / c
	for i := range n {
		m, row := maps[i*per:(i+1)*per], dst[i*c:(i+1)*c]
		for k := range c {
			var sum float64
			for p := range hw {
				sum += float64(m[p*c+k])
			}
			row[k] = float32(sum / float64(hw))
		}
	}
}

func (m *Model) run(what string, in, out tf.Output, pixels []byte) ([]float32, error) {
	x, err := m.images(pixels)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer tfutil.Free(x)
	res, err := m.saved.Session.Run(map[tf.Output]*tf.Tensor{in: x}, []tf.Output{out}, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, runError(err))
	}
	defer tfutil.Free(res...)
	return tfutil.Float32s(res[0])
}

// EncodeAll encodes any number of packed images, batch at a time. A
// cancelled ctx stops it between batches with ctx's error; the features of
// the batches done are returned with any error.
func (m *Model) EncodeAll(ctx context.Context, pixels []byte, batch int) ([]float32, error) {
	return m.allocEncode(ctx, pixels, batch, m.Manifest.FeatureDim, m.Encode)
}

// EncodeConvAll is EncodeAll for EncodeConv.
func (m *Model) EncodeConvAll(ctx context.Context, pixels []byte, batch int) ([]float32, error) {
	return m.allocEncode(ctx, pixels, batch, m.convDim, m.EncodeConv)
}

// EncodeInto is EncodeAll writing into dst, which holds exactly
// images × Manifest.FeatureDim values: a buffer the caller owns (one
// outside Go's heap, say).
func (m *Model) EncodeInto(ctx context.Context, dst []float32, pixels []byte, batch int) error {
	_, err := m.encodeInto(ctx, dst, pixels, batch, m.Manifest.FeatureDim, m.Encode)
	return err
}

// EncodeConvInto is EncodeInto for EncodeConv (images × ConvDim() values).
func (m *Model) EncodeConvInto(ctx context.Context, dst []float32, pixels []byte, batch int) error {
	_, err := m.encodeInto(ctx, dst, pixels, batch, m.convDim, m.EncodeConv)
	return err
}

func (m *Model) allocEncode(ctx context.Context, pixels []byte, batch, dim int, encode func([]byte) ([]float32, error)) ([]float32, error) {
	out := make([]float32, len(pixels)/max(m.Manifest.ImageBytes(), 1)*dim)
	done, err := m.encodeInto(ctx, out, pixels, batch, dim, encode)
	return out[:done*dim], err
}

// encodeInto is the one batched encode loop of the project: every image of
// pixels through encode, batch at a time, into dst; done counts the images
// encoded.
func (m *Model) encodeInto(ctx context.Context, dst []float32, pixels []byte, batch, dim int, encode func([]byte) ([]float32, error)) (done int, err error) {
	per := m.Manifest.ImageBytes()
	switch {
	case dim == 0: // only encode_conv's can be (ConvDim 0: no signature)
		return 0, fmt.Errorf("encode_conv: %s: %w", m.Dir, ErrNoConv)
	case len(pixels)%per != 0:
		return 0, fmt.Errorf("encode: %d bytes is not a whole number of %v images", len(pixels), m.Manifest.Input.Shape)
	case batch < 1:
		return 0, fmt.Errorf("encode: batch %d: want at least 1", batch)
	case len(dst) != len(pixels)/per*dim:
		return 0, fmt.Errorf("encode: a destination of %d values for %d images of %d", len(dst), len(pixels)/per, dim)
	}
	for i := 0; i < len(pixels); i += batch * per {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		j := min(i+batch*per, len(pixels))
		z, err := encode(pixels[i:j])
		if err == nil && len(z) != (j-i)/per*dim {
			err = fmt.Errorf("%d values for %d images of %d", len(z), (j-i)/per, dim)
		}
		if err != nil {
			return done, fmt.Errorf("images %d..%d: %w", i/per, j/per, err)
		}
		copy(dst[i/per*dim:], z)
		done = j / per
	}
	return done, nil
}

// Save writes a checkpoint of every variable under prefix (prefix.index and
// prefix.data-*), the optimizer's slots and the step counter included.
func (m *Model) Save(prefix string) error {
	if err := m.trainable(); err != nil {
		return err
	}
	name, err := tf.NewTensor(prefix)
	if err != nil {
		return err
	}
	defer tfutil.Free(name)
	out, err := m.saved.Session.Run(map[tf.Output]*tf.Tensor{m.saveFilename: name}, []tf.Output{m.saveTensor}, nil)
	tfutil.Free(out...)
	if err != nil {
		return fmt.Errorf("save checkpoint %s: %w", prefix, runError(err))
	}
	return nil
}

// Restore loads every variable from the checkpoint at prefix.
func (m *Model) Restore(prefix string) error {
	if err := m.trainable(); err != nil {
		return err
	}
	if _, err := os.Stat(prefix + ".index"); err != nil {
		return fmt.Errorf("restore checkpoint %s: %w", prefix, err)
	}
	name, err := tf.NewTensor(prefix)
	if err != nil {
		return err
	}
	defer tfutil.Free(name)
	if _, err := m.saved.Session.Run(map[tf.Output]*tf.Tensor{m.saveFilename: name}, nil, []*tf.Operation{m.restoreOp}); err != nil {
		return fmt.Errorf("restore checkpoint %s: %w", prefix, runError(err))
	}
	return nil
}

// runError drops what TensorFlow appends to a failed run's message that
// tells a user of this program nothing: the graph nodes' trace
// ([[{{node SaveV2}}]]), and the hint about listing allocated tensors,
// unless the failure is an out-of-memory one (a full disk is not).
func runError(err error) error {
	msg := err.Error()
	var keep []string
	for _, line := range strings.Split(msg, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[[") && strings.HasSuffix(t, "]]") {
			continue
		}
		if strings.HasPrefix(t, "Hint: If you want to see a list of allocated tensors") && !strings.Contains(msg, "OOM when allocating") {
			continue
		}
		keep = append(keep, line)
	}
	return errors.New(strings.TrimSpace(strings.Join(keep, "\n")))
}
