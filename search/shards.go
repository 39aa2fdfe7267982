package search

import (
	"cmp"
	"context"
	"errors"
	"path"

	"github.com/infomax/infomax/internal/store"

	"encoding/json"
	"fmt"
	"strings"

	"github.com/infomax/infomax/internal/npy"
	"github.com/infomax/infomax/knn"
)

// EmbeddingFile names the description of an embedding folder: the sharded
// index the batch embedding pipeline (embed/) writes. Its shards are, in
// the format FormatNPY, NAME.npy (float32 [n, dim]) beside NAME.paths.txt
// (and NAME.labels.txt), or in FormatParquet NAME.parquet (see
// SaveParquet). A Parquet folder names it ParquetEmbeddingFile instead: the
// data stack's readers (pyarrow, pandas, Spark) take a folder for a table
// and skip only the files whose names open with "_" or ".". Folders written
// before it had this name hold the same as LegacyEmbeddingFile, which is
// read too.
const (
	EmbeddingFile        = "embedding.json"
	ParquetEmbeddingFile = "_embedding.json"
	LegacyEmbeddingFile  = "manifest.json"
	// EmbeddingKind is embedding.json's kind: no model manifest (kind
	// encoder or none) or shard list passes for one.
	EmbeddingKind = "infomax-embedding"

	FormatNPY     = "npy"
	FormatParquet = "parquet"
)

// Embedding says which model made an embedding folder's features and lists
// its shards (embedding.json).
type Embedding struct {
	Kind        string `json:"kind,omitempty"` // EmbeddingKind ("": written before the key)
	Run         string `json:"run"`            // the run folder, absolute
	RunRelative string `json:"run_relative"`   // and relative to the sharded folder (see Index.Run)
	ConfigHash  string `json:"config_hash"`
	Step        int64  `json:"step"`
	// Precision is what the encoder computed the features in (float32 or
	// bfloat16; "": written before the key).
	Precision string `json:"precision,omitempty"`
	// Format is the shards' format: FormatNPY ("" before the key) or
	// FormatParquet.
	Format string `json:"format,omitempty"`
	// Feature is which of the encoder's features the rows are ("": z_mean).
	Feature string   `json:"feature,omitempty"`
	Dim     int      `json:"dim"`
	Images  int      `json:"images"`
	Bad     int      `json:"bad"` // images left out (listed in bad.txt)
	Shards  []string `json:"shards"`
	Inputs  []string `json:"inputs"`
	// Labels says where the images' classes came from ("folders" or the
	// labels file; "": none); each shard then has NAME.labels.txt, a class
	// a line ("" for an image without one).
	Labels     string   `json:"labels,omitempty"`
	Classes    []string `json:"classes,omitempty"`
	Unlabelled int      `json:"unlabelled,omitempty"`
	// File is the file it was read from (embedding.json, or a legacy
	// manifest.json); not written.
	File string `json:"-"`
}

// EmbeddingFiles are the names an embedding folder's description may
// have, in the order they are looked for.
var EmbeddingFiles = []string{EmbeddingFile, ParquetEmbeddingFile, LegacyEmbeddingFile}

// EmbeddingFileOf is the name of the description of a folder of format:
// ParquetEmbeddingFile for FormatParquet, else EmbeddingFile.
func EmbeddingFileOf(format string) string {
	if format == FormatParquet {
		return ParquetEmbeddingFile
	}
	return EmbeddingFile
}

// BadFileOf is the name of the list of images embed left out, in a folder
// of format: _bad.txt beside Parquet parts (which readers of the folder
// skip), else bad.txt.
func BadFileOf(format string) string {
	if format == FormatParquet {
		return "_bad.txt"
	}
	return "bad.txt"
}

// ReadEmbedding reads and checks the description of an embedding folder
// (local, or a prefix in an object store): its embedding.json (in a
// Parquet folder _embedding.json), or the manifest.json of a folder written
// before that name.
func ReadEmbedding(ctx context.Context, dir string) (*Embedding, error) {
	var mf string
	var raw []byte
	var err error
	for _, name := range EmbeddingFiles {
		mf = store.Join(dir, name)
		if raw, err = store.ReadFile(ctx, mf, maxManifestBytes); !errors.Is(err, store.ErrNotExist) {
			break
		}
	}
	if errors.Is(err, store.ErrNotExist) {
		return nil, fmt.Errorf("%s: no %s (nor %s, nor the older %s): not a folder the embed command wrote: %w", dir, EmbeddingFile, ParquetEmbeddingFile, LegacyEmbeddingFile, err)
	}
	if err != nil {
		return nil, err
	}
	var m Embedding
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", mf, err)
	}
	if m.Kind != "" && m.Kind != EmbeddingKind {
		return nil, fmt.Errorf("%s: kind %q, not an embedding folder's (%s)", mf, m.Kind, EmbeddingKind)
	}
	m.File = mf
	if m.Dim <= 0 || m.Dim > maxDim || m.Images < 0 || m.Images > maxImages {
		return nil, fmt.Errorf("%s: feature dimension %d, %d images: want a dimension from 1 to %d and at most %d images", mf, m.Dim, m.Images, maxDim, maxImages)
	}
	if m.Format != "" && m.Format != FormatNPY && m.Format != FormatParquet {
		return nil, fmt.Errorf("%s: format %q: want %s or %s (written by a newer embed?)", mf, m.Format, FormatNPY, FormatParquet)
	}
	for _, s := range m.Shards {
		if s != path.Base(s) || strings.ContainsAny(s, `/\`) || s == "" || s == "." || s == ".." {
			return nil, fmt.Errorf("%s: shard %q is not a file of the folder", mf, s)
		}
	}
	return &m, nil
}

// Shard is one shard's features, paths and (when the manifest has labels)
// classes.
type Shard struct {
	Features knn.Features
	Paths    []string
	Labels   []string // nil without labels; "" for an image without a class
}

// ShardFiles are the files of shard name in a folder of format m.Format.
func (m *Embedding) ShardFiles(name string) []string {
	if m.Format == FormatParquet {
		return []string{name + ".parquet"}
	}
	files := []string{name + ".npy", name + ".paths.txt"}
	if m.Labels != "" {
		files = append(files, name+".labels.txt")
	}
	return files
}

// ReadShard reads shard name of the sharded folder dir whose manifest is m.
// Each file's size is checked against what the manifest's counts allow
// before it is read, and the three files against each other.
func ReadShard(ctx context.Context, dir string, m *Embedding, name string) (*Shard, error) {
	if m.Format == FormatParquet {
		return readParquetShard(ctx, dir, m, name)
	}
	file := store.Join(dir, name+".npy")
	// No shard holds more rows than the whole folder.
	raw, err := store.ReadFile(ctx, file, npyHeaderBytes+4*int64(m.Dim)*int64(m.Images))
	if err != nil {
		return nil, err
	}
	feats, n, err := npy.ParseFloat32Rows(raw, file, m.Dim)
	if err != nil {
		return nil, err
	}
	sh := &Shard{Features: knn.Features{Data: feats, Dim: m.Dim}}
	readLines := func(suffix string) ([]string, error) {
		file := store.Join(dir, name+suffix)
		raw, err := store.ReadFile(ctx, file, int64(n+1)*maxPathBytes)
		if err != nil {
			return nil, err
		}
		var lines []string
		if n > 0 {
			lines = strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
		}
		if len(lines) != n {
			return nil, fmt.Errorf("%s: %d lines for %d feature rows", file, len(lines), n)
		}
		return lines, nil
	}
	if sh.Paths, err = readLines(".paths.txt"); err != nil {
		return nil, err
	}
	if m.Labels != "" {
		if sh.Labels, err = readLines(".labels.txt"); err != nil {
			return nil, err
		}
		if sh.Labels == nil {
			sh.Labels = []string{}
		}
	}
	return sh, nil
}

// readParquetShard reads shard name, NAME.parquet, of a Parquet folder,
// checking it against the folder's embedding.json: the dimension, the
// model, the feature and the label column.
func readParquetShard(ctx context.Context, dir string, m *Embedding, name string) (*Shard, error) {
	file := store.Join(dir, name+".parquet")
	// No shard holds more rows than the whole folder: features, paths and
	// labels, and the file's own structure.
	limit := int64(m.Images)*(4*int64(m.Dim)+2*maxPathBytes) + 1<<20
	raw, err := store.ReadFile(ctx, file, limit)
	if err != nil {
		return nil, err
	}
	if !isParquet(raw) {
		return nil, fmt.Errorf("%s: not a Parquet file (it does not open with %q)", file, parquetMagic)
	}
	t, err := readParquet(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	ix := t.ix
	switch {
	case ix.Features.Dim != m.Dim:
		return nil, fmt.Errorf("%s: features of dimension %d, %s says %d", file, ix.Features.Dim, m.File, m.Dim)
	case ix.ConfigHash != "" && ix.ConfigHash != m.ConfigHash || ix.Step != 0 && ix.Step != m.Step:
		return nil, fmt.Errorf("%s: made by the model of spec %s at step %d, %s says %s at step %d", file, ix.ConfigHash, ix.Step, m.File, m.ConfigHash, m.Step)
	case cmp.Or(ix.Feature, FeatureZMean) != cmp.Or(m.Feature, FeatureZMean):
		return nil, fmt.Errorf("%s: feature %q, %s says %q", file, cmp.Or(ix.Feature, FeatureZMean), m.File, cmp.Or(m.Feature, FeatureZMean))
	case m.Labels != "" && t.labels == nil:
		return nil, fmt.Errorf("%s: no %q column, and %s says the images have classes (%s)", file, ParquetLabel, m.File, m.Labels)
	}
	sh := &Shard{Features: ix.Features, Paths: ix.Paths}
	if m.Labels != "" {
		sh.Labels = t.labels
	}
	return sh, nil
}

// loadShards reads a sharded folder into one Index.
func loadShards(ctx context.Context, dir string) (*Index, error) {
	m, err := ReadEmbedding(ctx, dir)
	if err != nil {
		return nil, err
	}
	ix := &Index{Run: RunFolder(m.File, m.Run, m.RunRelative), ConfigHash: m.ConfigHash, Step: m.Step, Precision: m.Precision, Feature: m.Feature, Features: knn.Features{Dim: m.Dim}}
	for _, s := range m.Shards {
		sh, err := ReadShard(ctx, dir, m, s)
		if err != nil {
			return nil, err
		}
		ix.Paths = append(ix.Paths, sh.Paths...)
		ix.Features.Data = append(ix.Features.Data, sh.Features.Data...)
	}
	if len(ix.Paths) != m.Images {
		return nil, fmt.Errorf("%s: the manifest says %d images, the shards hold %d", dir, m.Images, len(ix.Paths))
	}
	return ix, nil
}

// Bounds on what a sharded index's files may hold, checked before reading.
const (
	maxManifestBytes = 64 << 20
	maxDim           = 1 << 16
	maxImages        = 1 << 31
	npyHeaderBytes   = 1 << 16
	maxPathBytes     = 4096
)
