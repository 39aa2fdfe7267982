// Package config resolves and validates a run's configuration: one source of truth.
//
// Package config is the one source of truth for a run: defaults, the YAML file,
// flags and environment variables, resolved and validated in one place.
//
// The graph-shaping part of a config (model, loss, optimizer, seed) is written
// as canonical JSON, the spec, which the Python exporter builds the SavedModel
// from; the SHA-256 of those bytes goes into the manifest, so a SavedModel made
// from another config is caught before any training starts.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/cpuinfo"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Config is a resolved run configuration. Field tags are the YAML keys.
type Config struct {
	// Name labels the run; by default the config file's base name.
	Name string `mapstructure:"name" yaml:"name"`
	// ExportDir is where the SavedModel and its manifest live.
	ExportDir string `mapstructure:"export_dir" yaml:"export_dir"`
	// Seed drives weight initialisation, the in-graph random draws and the data order.
	Seed int64 `mapstructure:"seed" yaml:"seed"`
	// Device is auto (a GPU if TensorFlow sees one), cpu or gpu.
	Device    string    `mapstructure:"device" yaml:"device"`
	Data      Data      `mapstructure:"data" yaml:"data"`
	Model     Model     `mapstructure:"model" yaml:"model"`
	Loss      Loss      `mapstructure:"loss" yaml:"loss"`
	Optimizer Optimizer `mapstructure:"optimizer" yaml:"optimizer"`
	Train     Train     `mapstructure:"train" yaml:"train"`
	Eval      Eval      `mapstructure:"eval" yaml:"eval"`
}

// Data names the data set and where its files are (see package data).
type Data struct {
	Format string `mapstructure:"format" yaml:"format"` // fashion_mnist, mnist, cifar10, tiny_imagenet, folder, shards
	Path   string `mapstructure:"path" yaml:"path"`     // a folder or a .tar, .tar.gz or .zip archive
	// SkipBad leaves out images that fail to decode (reported) instead of failing.
	SkipBad bool `mapstructure:"skip_bad" yaml:"skip_bad"`
	// TestFraction is held out as the test split of a folder without train/ and test/.
	TestFraction float64 `mapstructure:"test_fraction" yaml:"test_fraction"`
	// TinyTestForTraining adds Tiny ImageNet's unlabelled test/ images to training.
	TinyTestForTraining bool `mapstructure:"tiny_test_for_training" yaml:"tiny_test_for_training"`
	// Streaming reads and decodes the training images while training runs,
	// in a bounded window, instead of decoding the data set into memory
	// first: for data sets larger than memory (see package data, stream.go).
	Streaming bool `mapstructure:"streaming" yaml:"streaming"`
	// ShuffleBuffer is how many decoded images a sequential stream (tar
	// archives, the sharded layout) mixes its shards' images in.
	ShuffleBuffer int `mapstructure:"shuffle_buffer" yaml:"shuffle_buffer"`
	// CacheDir keeps decoded copies of data sets: "" for the user cache
	// folder (~/.cache/infomax/data), "off" for none.
	CacheDir string `mapstructure:"cache_dir" yaml:"cache_dir"`
	// What one file handed to the loaders may make them allocate (data.Limits):
	// an image's width × height and either side, read from its header before
	// decoding; the bytes of one file or archive member; how many times its
	// own size a compressed file or archive may inflate to (plus 64 MiB).
	MaxImagePixels  int64   `mapstructure:"max_image_pixels" yaml:"max_image_pixels"`
	MaxImageSide    int     `mapstructure:"max_image_side" yaml:"max_image_side"`
	MaxFileMiB      int64   `mapstructure:"max_file_mib" yaml:"max_file_mib"`
	MaxInflateRatio float64 `mapstructure:"max_inflate_ratio" yaml:"max_inflate_ratio"`
}

// Limits are the data section's limits as package data takes them.
func (d Data) Limits() data.Limits {
	return data.Limits{MaxPixels: d.MaxImagePixels, MaxSide: d.MaxImageSide, MaxFileBytes: d.MaxFileMiB << 20, MaxInflation: d.MaxInflateRatio}
}

// Model shapes the network (see pyexport/model.py).
type Model struct {
	ImageSize     int    `mapstructure:"image_size" yaml:"image_size" json:"image_size"`
	Channels      int    `mapstructure:"channels" yaml:"channels" json:"channels"`
	Blocks        int    `mapstructure:"blocks" yaml:"blocks" json:"blocks"`
	ZDim          int    `mapstructure:"z_dim" yaml:"z_dim" json:"z_dim"`
	Scaling       string `mapstructure:"scaling" yaml:"scaling" json:"scaling"`
	GlobalPairing string `mapstructure:"global_pairing" yaml:"global_pairing" json:"global_pairing"`
	// Augment applies a random crop after AugmentPad pixels of padding and a
	// horizontal flip (and brightness/contrast jitter with ColorJitter) in the
	// training step; the seed uses none.
	Augment     bool `mapstructure:"augment" yaml:"augment" json:"augment"`
	AugmentPad  int  `mapstructure:"augment_pad" yaml:"augment_pad" json:"augment_pad"`
	ColorJitter bool `mapstructure:"color_jitter" yaml:"color_jitter" json:"color_jitter"`
	// CropMinArea > 0 makes each view of a two-view objective AMDIM's
	// ImageNet crop instead of the translation: a random box of that to all
	// of the image's area (aspect ratio 0.7 to 1.4) resized back to
	// image_size; model.augment_pad must then be 0. Left out of the spec at
	// 0 (off), as BatchNorm at its default.
	CropMinArea float64 `mapstructure:"crop_min_area" yaml:"crop_min_area" json:"crop_min_area,omitempty"`
	// BatchNorm is keras (the seed's BatchNormalization: a dozen elementwise
	// ops) or fused (the same normalisation as one FusedBatchNormV3 op,
	// faster, the last digits of every figure different). The spec leaves
	// out its default, keras, so that specs from before the key existed
	// keep their hashes.
	BatchNorm string `mapstructure:"batch_norm" yaml:"batch_norm" json:"batch_norm,omitempty"`
	// Precision is float32, bfloat16, or auto (the default): bfloat16 where
	// the CPU computes bfloat16 dot products natively (AMX or AVX512_BF16,
	// package internal/cpuinfo), float32 elsewhere. Load resolves auto, so a
	// Resolved config and the run folder's config.yaml hold float32 or
	// bfloat16. bfloat16: the exporter builds the encoder's convolution
	// blocks and the heads' Dense layers under Keras's mixed_bfloat16 policy
	// (bfloat16 products, float32 accumulation); variables, optimizer state,
	// batch-norm statistics, the code's Dense layers, scores and losses stay
	// float32. float32 is left out of the spec, as BatchNorm's default.
	Precision string `mapstructure:"precision" yaml:"precision" json:"precision,omitempty"`
}

// Loss is the objective and its weights: alpha·global + beta·local + gamma·prior.
type Loss struct {
	Alpha float64 `mapstructure:"alpha" yaml:"alpha" json:"alpha"`
	Beta  float64 `mapstructure:"beta" yaml:"beta" json:"beta"`
	Gamma float64 `mapstructure:"gamma" yaml:"gamma" json:"gamma"`
	// Objective is seed (the seed's shuffle-negative JSD terms), local_nce or
	// local_jsd (the DIM paper's local objective with InfoNCE or with JSD over
	// all in-batch pairs; they have no global term), or two_view_nce
	// (AMDIM's: two augmented views of each image, the code of each against
	// the other's local features with InfoNCE; model.augment_pad and
	// model.color_jitter shape the views, model.augment must be false).
	Objective string `mapstructure:"objective" yaml:"objective" json:"objective"`
	// Temperature divides the InfoNCE objectives' cosine scores; HeadDim is the width of
	// the local objectives' projection heads.
	Temperature float64 `mapstructure:"temperature" yaml:"temperature" json:"temperature"`
	HeadDim     int     `mapstructure:"head_dim" yaml:"head_dim" json:"head_dim"`
	// LocalScales is how many of the encoder's maps a two-view objective
	// contrasts with the code: 1 (C, the last block's map) or 2 (C and the
	// map of the block before it, twice its side, through a head of its
	// own; AMDIM's several scales). Left out of the spec at 1, as
	// model.batch_norm at its default.
	LocalScales int `mapstructure:"local_scales" yaml:"local_scales" json:"local_scales,omitempty"`
}

// Optimizer is Adam's setting, baked into the exported graph.
type Optimizer struct {
	LearningRate float64 `mapstructure:"learning_rate" yaml:"learning_rate" json:"learning_rate"`
}

// Train is the schedule; none of it is in the graph.
type Train struct {
	BatchSize       int `mapstructure:"batch_size" yaml:"batch_size"`
	Epochs          int `mapstructure:"epochs" yaml:"epochs"`
	LogEvery        int `mapstructure:"log_every" yaml:"log_every"`
	CheckpointEvery int `mapstructure:"checkpoint_every" yaml:"checkpoint_every"`
	KeepCheckpoints int `mapstructure:"keep_checkpoints" yaml:"keep_checkpoints"`
	IntraOpThreads  int `mapstructure:"intra_op_threads" yaml:"intra_op_threads"` // 0: TensorFlow's choice (all cores)
	InterOpThreads  int `mapstructure:"inter_op_threads" yaml:"inter_op_threads"`
	// OnNonFinite is what a NaN or infinite loss does: stop (with the step
	// and the term named), or rollback to the last checkpoint with the
	// learning rate times LRBackoff, at most MaxRollbacks times.
	OnNonFinite string `mapstructure:"on_nonfinite" yaml:"on_nonfinite"`
	// LRSchedule is the learning rate over the run: constant (the seed's
	// optimizer.learning_rate throughout) or cosine (decayed from it to 0
	// over train.epochs, set before every step).
	LRSchedule   string  `mapstructure:"lr_schedule" yaml:"lr_schedule"`
	LRBackoff    float64 `mapstructure:"lr_backoff" yaml:"lr_backoff"`
	MaxRollbacks int     `mapstructure:"max_rollbacks" yaml:"max_rollbacks"`
	// ForceNonFiniteAt is a test hook: at this step (0: never) the runner
	// feeds NaN noise, which makes every loss term NaN.
	ForceNonFiniteAt int64 `mapstructure:"force_nonfinite_at" yaml:"force_nonfinite_at"`
}

// Eval sets the kNN report written at the end of training.
type Eval struct {
	K           int     `mapstructure:"k" yaml:"k"`                     // majority-vote kNN
	WeightedK   int     `mapstructure:"weighted_k" yaml:"weighted_k"`   // similarity-weighted kNN
	Temperature float64 `mapstructure:"temperature" yaml:"temperature"` // weight exp(sim / temperature)
	BatchSize   int     `mapstructure:"batch_size" yaml:"batch_size"`   // images per encode call
	// ProbeEpochs and ProbeBatchSize train the linear probe (Adam 1e-3).
	ProbeEpochs    int `mapstructure:"probe_epochs" yaml:"probe_epochs"`
	ProbeBatchSize int `mapstructure:"probe_batch_size" yaml:"probe_batch_size"`
	// MLPProbeEpochs trains the Deep InfoMax paper's classifier on the
	// features (200 hidden units, batch norm, dropout 0.1; Adam 1e-3, the
	// probe's batch size); 0: none.
	MLPProbeEpochs int `mapstructure:"mlp_probe_epochs" yaml:"mlp_probe_epochs"`
	// MLPProbeConv trains the MLP probe a second time on the encoder's last
	// convolutional feature map (h·w·z_dim values per image, the paper's
	// "conv" features: 819 MB for CIFAR-10's 50,000 training images, held
	// outside Go's heap while the probe trains); models exported before
	// the encode_conv signature skip it with a line saying so.
	MLPProbeConv bool `mapstructure:"mlp_probe_conv" yaml:"mlp_probe_conv"`
	// GridRows random test queries, each with its GridNeighbours nearest
	// training images, make the retrieval grids.
	GridRows       int `mapstructure:"grid_rows" yaml:"grid_rows"`
	GridNeighbours int `mapstructure:"grid_neighbours" yaml:"grid_neighbours"`
	// AfterTraining evaluates the run when training ends (else `runner eval`
	// does, when asked).
	AfterTraining bool `mapstructure:"after_training" yaml:"after_training"`
	// EveryEpochs runs the kNN monitor every that many epochs during
	// training (0: off): the bank and the test split encoded, weighted kNN
	// logged to metrics.jsonl, TensorBoard and report.json's curve.
	EveryEpochs int `mapstructure:"every_epochs" yaml:"every_epochs"`
	// ProjectorImages test images (a seeded sample) go to TensorBoard's
	// embedding projector at each evaluation: features, labels, a sprite
	// (0: none).
	ProjectorImages int `mapstructure:"projector_images" yaml:"projector_images"`
	// RawPixelMiB bounds the raw-pixel baseline's bank, the training images
	// as float32: past it, a seeded sample of them (said in the report).
	// 1024 keeps all of CIFAR-10 (614 MB) and the Tiny ImageNet subset
	// (983 MB); the full Tiny ImageNet (4.9 GB) gets 21,845 images.
	RawPixelMiB int64 `mapstructure:"raw_pixel_mib" yaml:"raw_pixel_mib"`
}

// Defaults are the seed's settings where it has one; each override file lists
// only what differs.
//
// Its model.precision is auto: resolve it (ResolvePrecision) or set it
// before the config is hashed or exported.
func Defaults() Config {
	return Config{
		ExportDir: "",
		Seed:      0,
		Device:    "auto",
		Data: Data{Format: "fashion_mnist", Path: "/usr/share/datasets/fashion-mnist", TestFraction: 0.1, ShuffleBuffer: 10000,
			MaxImagePixels: data.DefaultMaxPixels, MaxImageSide: data.DefaultMaxSide,
			MaxFileMiB: data.DefaultMaxFileBytes >> 20, MaxInflateRatio: data.DefaultMaxInflation},
		Model: Model{
			ImageSize:     28,
			Channels:      1,
			Blocks:        3,   // 28 → 14 → 7 → 3: a 3×3 local map
			ZDim:          256, // the seed's code size
			Scaling:       "unit_centered",
			GlobalPairing: "seed", // [z, z] vs [z, shuffled z], as in the seed's script
			AugmentPad:    4,      // used only with augment: true
			BatchNorm:     "keras",
			Precision:     PrecisionAuto,
		},
		Loss: Loss{
			Alpha:       0.5,  // weight of global MI
			Beta:        1.5,  // weight of local MI
			Gamma:       0.01, // weight of the prior KL
			Objective:   "seed",
			Temperature: 0.1, // local_nce
			HeadDim:     128, // local_nce, local_jsd
			LocalScales: 1,
		},
		Optimizer: Optimizer{LearningRate: 1e-3}, // the seed's Adam(1e-3)
		Train: Train{
			BatchSize:       64,
			Epochs:          2,
			LogEvery:        50,
			CheckpointEvery: 500,
			KeepCheckpoints: 3,
			OnNonFinite:     "stop",
			LRSchedule:      "constant",
			LRBackoff:       0.5,
			MaxRollbacks:    3,
		},
		Eval: Eval{K: 20, WeightedK: 200, Temperature: 0.1, BatchSize: 500,
			ProbeEpochs: 30, ProbeBatchSize: 256, MLPProbeConv: true, GridRows: 10, GridNeighbours: 9, AfterTraining: true,
			ProjectorImages: 1000, RawPixelMiB: 1024},
	}
}

// Source says where a resolved value came from.
type Source string

const (
	FromDefault Source = "default"
	FromFile    Source = "file"
	FromEnv     Source = "env"
	FromFlag    Source = "flag"
)

// EnvPrefix starts every environment override: INFOMAX_TRAIN_BATCH_SIZE=32.
const EnvPrefix = "INFOMAX"

// Keys lists every config key in dotted form, in declaration order.
func Keys() []string {
	var keys []string
	walk(reflect.TypeOf(Config{}), "", func(key string, _ reflect.Type) { keys = append(keys, key) })
	return keys
}

func walk(t reflect.Type, prefix string, fn func(string, reflect.Type)) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key := prefix + f.Tag.Get("mapstructure")
		if f.Type.Kind() == reflect.Struct {
			walk(f.Type, key+".", fn)
			continue
		}
		fn(key, f.Type)
	}
}

func defaultValue(key string) any {
	v := reflect.ValueOf(Defaults())
	for _, part := range strings.Split(key, ".") {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if t.Field(i).Tag.Get("mapstructure") == part {
				v = v.Field(i)
				break
			}
		}
	}
	return v.Interface()
}

// AddFlags registers one flag per config key (--train.batch_size 32, ...).
// Only flags the user sets override the file.
func AddFlags(fs *pflag.FlagSet) {
	for _, key := range Keys() {
		usage := "override config key " + key
		switch d := defaultValue(key).(type) {
		case int:
			fs.Int(key, d, usage)
		case int64:
			fs.Int64(key, d, usage)
		case float64:
			fs.Float64(key, d, usage)
		case string:
			fs.String(key, d, usage)
		case bool:
			fs.Bool(key, d, usage)
		default:
			panic(fmt.Sprintf("config: no flag type for %s (%T)", key, d))
		}
	}
}

// Resolved is a validated config with the origin of each value.
type Resolved struct {
	Config
	File    string
	Sources map[string]Source
	// PrecisionAuto says why model.precision auto became what
	// Model.Precision holds ("auto: AMX", "auto: neither AMX nor
	// AVX512_BF16"); "" when the precision was given.
	PrecisionAuto string
}

// PrecisionAuto is model.precision's default: bfloat16 where the CPU
// computes it natively, float32 elsewhere (ResolvePrecision).
const PrecisionAuto = "auto"

// ResolvePrecision replaces model.precision auto by bfloat16 where this CPU
// computes bfloat16 dot products natively (AMX or AVX512_BF16; or where
// INFOMAX_CPU_BF16 says so) and float32 elsewhere, and says why ("auto:
// AMX"); a given precision stays, and why is "". Load calls it; a Config
// made by hand (Defaults) calls it before it is exported or hashed.
func (c *Config) ResolvePrecision() (why string, err error) {
	if c.Model.Precision != PrecisionAuto {
		return "", nil
	}
	p, why, err := AutoPrecision()
	if err != nil {
		return "", fmt.Errorf("model.precision auto: %w", err)
	}
	c.Model.Precision = p
	return why, nil
}

// AutoPrecision is what model.precision auto means on this CPU, and why:
// ("bfloat16", "auto: AMX; …") or ("float32", "auto: neither AMX nor
// AVX512_BF16"). A CPU whose flags say it computes bfloat16 natively is
// taken at its word only when TensorFlow's bfloat16 matrix product is
// measured at least as fast as its float32 one (graph.MatMulRate, once per
// process): a Xeon with avx512_bf16 in a virtual machine measured bfloat16
// at half float32's rate (docs/speed.md). An answer injected through
// INFOMAX_CPU_BF16 is final: nothing is measured.
func AutoPrecision() (precision, why string, err error) {
	bf, err := cpuinfo.NativeBF16()
	if err != nil {
		return "", "", err
	}
	if !bf.Native() {
		return "float32", "auto: " + bf.String(), nil
	}
	if bf.Injected {
		return "bfloat16", "auto: " + bf.String(), nil
	}
	probe.Do(func() {
		cpu := graph.Options{Device: "cpu"} // the CPU's rates, also where a GPU is visible
		probe.f32, probe.err = graph.MatMulRate(cpu, "float32", probeSide, 3)
		if probe.err == nil {
			probe.bf16, probe.err = graph.MatMulRate(cpu, "bfloat16", probeSide, 3)
		}
	})
	if probe.err != nil {
		// The flags' answer stands; the reason says it was not measured.
		return "bfloat16", fmt.Sprintf("auto: %s (bfloat16 not measured against float32: %v)", bf, probe.err), nil
	}
	rates := fmt.Sprintf("%d² products at %.0f GFLOP/s in bfloat16, %.0f in float32", probeSide, probe.bf16, probe.f32)
	if probe.bf16 < probe.f32 {
		return "float32", fmt.Sprintf("auto: %s, but %s", bf, rates), nil
	}
	return "bfloat16", fmt.Sprintf("auto: %s, %s", bf, rates), nil
}

// probeSide is the side of the matrices AutoPrecision multiplies (2 GFLOP a
// product: tens of milliseconds on 2 cores).
const probeSide = 1024

// probe holds AutoPrecision's measurement, made once per process.
var probe struct {
	sync.Once
	f32, bf16 float64
	err       error
}

// YAML renders the resolved config, for the run folder, with a comment
// that says how auto chose model.precision.
func (r *Resolved) YAML() []byte {
	out := r.Config.YAML()
	if r.PrecisionAuto != "" {
		out = append([]byte(fmt.Sprintf("# model.precision: %s, chosen by %s (CPU: %s)\n", r.Model.Precision, r.PrecisionAuto, cpuinfo.Model())), out...)
	}
	return out
}

// MaxFileBytes bounds a config file; the shipped ones are under 2 KB.
const MaxFileBytes = 1 << 20

func readConfigFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", file, err)
	}
	if len(raw) > MaxFileBytes {
		return nil, fmt.Errorf("config %s: more than %d bytes: not a config file", file, MaxFileBytes)
	}
	return raw, nil
}

// Load resolves defaults, the YAML file (may be empty for defaults only), the
// environment and the flags that were set, then validates the result and
// resolves model.precision auto (ResolvePrecision).
func Load(file string, flags *pflag.FlagSet) (*Resolved, error) {
	return load(file, flags, false)
}

// LoadRun is Load for a run folder's config.yaml: one without
// model.precision was written before the key existed, when every run
// trained in float32, so its precision is float32, not auto.
func LoadRun(file string, flags *pflag.FlagSet) (*Resolved, error) {
	return load(file, flags, true)
}

func load(file string, flags *pflag.FlagSet, runFile bool) (*Resolved, error) {
	v := viper.New()
	for _, key := range Keys() {
		v.SetDefault(key, defaultValue(key))
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	fileKeys := map[string]bool{}
	if file != "" {
		raw, err := readConfigFile(file)
		if err != nil {
			return nil, err
		}
		var tree map[string]any
		if err := yaml.Unmarshal(raw, &tree); err != nil {
			return nil, fmt.Errorf("config %s: not valid YAML: %w", file, err)
		}
		if err := checkKeys(tree, ""); err != nil {
			return nil, fmt.Errorf("config %s: %w", file, err)
		}
		for _, k := range flatten(tree, "") {
			fileKeys[k] = true
		}
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(raw)); err != nil {
			return nil, fmt.Errorf("config %s: %w", file, err)
		}
	}
	sources := map[string]Source{}
	for _, key := range Keys() {
		sources[key] = FromDefault
		if fileKeys[key] {
			sources[key] = FromFile
		}
		if _, ok := os.LookupEnv(envName(key)); ok {
			sources[key] = FromEnv
		}
		if flags != nil {
			if f := flags.Lookup(key); f != nil && f.Changed {
				if err := v.BindPFlag(key, f); err != nil {
					return nil, err
				}
				sources[key] = FromFlag
			}
		}
	}

	var c Config
	err := v.UnmarshalExact(&c, func(dc *mapstructure.DecoderConfig) {
		dc.WeaklyTypedInput = false
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(envStrings)
	})
	if err != nil {
		where := "config"
		if file != "" {
			where = "config " + file
		}
		return nil, fmt.Errorf("%s: %s", where, decodeErrors(err, sources))
	}
	if c.Name == "" && file != "" {
		c.Name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	}
	if c.ExportDir == "" {
		c.ExportDir = filepath.Join("exports", c.Name)
	}
	if err := c.Validate(); err != nil {
		if file != "" {
			return nil, fmt.Errorf("config %s: %w", file, err)
		}
		return nil, err
	}
	if runFile && sources["model.precision"] == FromDefault {
		c.Model.Precision = "float32"
	}
	why, err := c.ResolvePrecision()
	if err != nil {
		return nil, err
	}
	return &Resolved{Config: c, File: file, Sources: sources, PrecisionAuto: why}, nil
}

var decodedKey = regexp.MustCompile(`^'([a-z_.]+)' `)

// decodeErrors turns mapstructure's error (a header line, then one line per
// field) into one line: each field's error, with where its value came from
// when not from the file.
func decodeErrors(err error, sources map[string]Source) string {
	var parts []string
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
		if line == "" || strings.HasPrefix(line, "decoding failed due to") {
			continue
		}
		if m := decodedKey.FindStringSubmatch(line); m != nil {
			switch sources[m[1]] {
			case FromEnv:
				line += " (from $" + envName(m[1]) + ")"
			case FromFlag:
				line += " (from --" + m[1] + ")"
			}
		}
		parts = append(parts, line)
	}
	if len(parts) == 0 {
		return err.Error()
	}
	return strings.Join(parts, "; ")
}

func envName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// envStrings turns string values from the environment into the field's kind;
// file values keep their YAML types, so a quoted number in a file is an error.
func envStrings(from, to reflect.Type, data any) (any, error) {
	s, ok := data.(string)
	if !ok || from.Kind() != reflect.String || to.Kind() == reflect.String {
		return data, nil
	}
	var out any
	switch to.Kind() {
	case reflect.Int, reflect.Int64:
		var n int64
		if _, err := fmt.Sscan(s, &n); err != nil {
			return nil, fmt.Errorf("%q is not an integer", s)
		}
		out = n
	case reflect.Float64:
		var f float64
		if _, err := fmt.Sscan(s, &f); err != nil {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		out = f
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", s)
		}
		out = b
	default:
		return data, nil
	}
	return out, nil
}

func flatten(tree map[string]any, prefix string) []string {
	var out []string
	for k, val := range tree {
		if sub, ok := val.(map[string]any); ok {
			out = append(out, flatten(sub, prefix+k+".")...)
			continue
		}
		out = append(out, prefix+k)
	}
	return out
}

// checkKeys refuses keys that are not config keys, naming the closest one.
func checkKeys(tree map[string]any, prefix string) error {
	known := map[string]bool{}
	sections := map[string]bool{}
	for _, k := range Keys() {
		known[k] = true
		if i := strings.LastIndex(k, "."); i > 0 {
			sections[k[:i]] = true
		}
	}
	names := make([]string, 0, len(tree))
	for k := range tree {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		key := prefix + k
		if sub, ok := tree[k].(map[string]any); ok && sections[key] {
			if err := checkKeys(sub, key+"."); err != nil {
				return err
			}
			continue
		}
		if !known[key] {
			candidates := Keys()
			for sec := range sections {
				candidates = append(candidates, sec)
			}
			sort.Strings(candidates)
			return fmt.Errorf("unknown key %q (did you mean %q?)", key, closest(key, candidates))
		}
	}
	return nil
}

func closest(key string, keys []string) string {
	best, bestD := "", 1<<30
	for _, k := range keys {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Spec is the graph-shaping part of the config, as the exporter reads it.
type Spec struct {
	Model     Model     `json:"model"`
	Loss      Loss      `json:"loss"`
	Optimizer Optimizer `json:"optimizer"`
	Seed      int64     `json:"seed"`
}

// SpecJSON returns the canonical spec bytes and their SHA-256 (hex): the
// config hash that the manifest records.
func (c *Config) SpecJSON() ([]byte, string) {
	m := c.Model
	if m.BatchNorm == "keras" {
		m.BatchNorm = "" // left out: the default, as before the key existed
	}
	switch m.Precision {
	case "float32":
		m.Precision = ""
	case PrecisionAuto:
		// A hash must not depend on the machine: auto is resolved first
		// (Load, ResolvePrecision).
		panic("config: SpecJSON of model.precision auto: call ResolvePrecision first")
	}
	l := c.Loss
	if l.LocalScales == 1 {
		l.LocalScales = 0
	}
	raw, err := json.Marshal(Spec{Model: m, Loss: l, Optimizer: c.Optimizer, Seed: c.Seed})
	if err != nil {
		panic(err) // plain structs of numbers and strings always marshal
	}
	sum := sha256.Sum256(raw)
	return raw, hex.EncodeToString(sum[:])
}

// SameWeights says whether a checkpoint or model of spec hash holds the
// weights of c's spec: it is c's spec hash under one of the precisions
// (float32 and bfloat16 keep the same float32 variables, so a run may change
// its precision between a checkpoint and the next).
func (c *Config) SameWeights(hash string) bool {
	for _, p := range precisions {
		o := *c
		o.Model.Precision = p
		if _, h := o.SpecJSON(); h == hash {
			return true
		}
	}
	return false
}

// YAML renders the resolved config, for the run folder.
func (c *Config) YAML() []byte {
	out, err := yaml.Marshal(c)
	if err != nil {
		panic(err)
	}
	return out
}
