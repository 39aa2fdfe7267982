package search

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/infomax/infomax/internal/store"
	"github.com/infomax/infomax/knn"
)

// Features as Apache Parquet, for the data stack (DuckDB, pandas, Polars,
// Spark, BigQuery, vector stores): one row per image, the columns
// ParquetPath ("path", string), with classes ParquetLabel ("label", string,
// null for an image without one), and ParquetFeature ("feature", a
// fixed-size list of float32 of the features' dimension), zstd-compressed,
// in row groups of at most ParquetRowGroup rows (fewer for wide features:
// ParquetRowGroupBytes). The file's key-value
// metadata says which model made the features (the keys ParquetMeta*
// below). `runner index` writes one such file, embed one per shard.
const (
	ParquetPath    = "path"
	ParquetLabel   = "label"
	ParquetFeature = "feature"
	// ParquetRowGroup bounds a row group: 16,384 rows of 256 float32 are
	// 16 MiB before compression. Wider features go in fewer rows a group,
	// at most ParquetRowGroupBytes of features (4,096 rows of a 4×4×256
	// convolutional map).
	ParquetRowGroup      = 16384
	ParquetRowGroupBytes = 16 << 20

	ParquetMetaFormat     = "infomax.format"  // ParquetFormat
	ParquetMetaVersion    = "infomax.version" // the module version that wrote it
	ParquetMetaRun        = "infomax.run"
	ParquetMetaRunRel     = "infomax.run_relative"
	ParquetMetaConfigHash = "infomax.config_hash"
	ParquetMetaStep       = "infomax.step"
	ParquetMetaPrecision  = "infomax.precision"
	ParquetMetaFeature    = "infomax.feature" // FeatureZMean, or another of the encoder's features
	ParquetMetaDim        = "infomax.dim"
	ParquetMetaNormalised = "infomax.l2_normalised" // "false": features as the encoder gives them

	ParquetFormat = "infomax-index-parquet-1"
)

// FeatureZMean names the encoder's code, z_mean: what an index holds when
// it names no feature.
const FeatureZMean = "z_mean"

// parquetMagic opens (and closes) every Parquet file.
const parquetMagic = "PAR1"

// Provenance says which model made a set of features: what a Parquet
// file's metadata states.
type Provenance struct {
	Run         string // the run folder, absolute
	RunRelative string // and relative to the file's folder ("": none)
	ConfigHash  string
	Step        int64
	Precision   string
	Feature     string // FeatureZMean when ""
}

// provenance is the index's provenance, its run relative to path.
func (ix *Index) provenance(path string) Provenance {
	return Provenance{Run: ix.Run, RunRelative: RelativeRun(path, ix.Run), ConfigHash: ix.ConfigHash, Step: ix.Step, Precision: ix.Precision, Feature: ix.Feature}
}

// SaveParquet writes the index to path (a local file, or s3:// and gs://
// with package buckets linked) as Parquet, whole or not at all: a local
// file by temporary file and rename, an object by one upload.
func (ix *Index) SaveParquet(ctx context.Context, path string) error {
	if err := ix.check(); err != nil {
		return err
	}
	return store.Write(ctx, path, func(w io.Writer) error { return writeParquet(w, ix.Paths, nil, ix.Features, ix.provenance(path)) })
}

// SaveParquet writes the shard to path as Parquet (its labels, when it has
// them, as the label column), whole or not at all, with p as its metadata
// (p.RunRelative is made relative to path's folder here).
func (sh *Shard) SaveParquet(ctx context.Context, path string, p Provenance) error {
	ix := Index{Paths: sh.Paths, Features: sh.Features}
	if err := ix.check(); err != nil {
		return err
	}
	if sh.Labels != nil && len(sh.Labels) != len(sh.Paths) {
		return fmt.Errorf("shard: %d labels for %d paths", len(sh.Labels), len(sh.Paths))
	}
	p.RunRelative = RelativeRun(path, p.Run)
	return store.Write(ctx, path, func(w io.Writer) error { return writeParquet(w, sh.Paths, sh.Labels, sh.Features, p) })
}

// writeParquet writes rows of paths, labels (none when nil; "" is a null
// label) and features to w, with p as the file's metadata. It holds one
// row group at a time beyond what it is given.
func writeParquet(w io.Writer, paths, labels []string, f knn.Features, p Provenance) error {
	dim := f.Dim
	md := arrow.NewMetadata(
		[]string{ParquetMetaFormat, ParquetMetaVersion, ParquetMetaRun, ParquetMetaRunRel, ParquetMetaConfigHash, ParquetMetaStep, ParquetMetaPrecision, ParquetMetaFeature, ParquetMetaDim, ParquetMetaNormalised},
		[]string{ParquetFormat, ModuleVersion(), p.Run, p.RunRelative, p.ConfigHash, strconv.FormatInt(p.Step, 10), p.Precision, cmp.Or(p.Feature, FeatureZMean), strconv.Itoa(dim), "false"})
	fields := []arrow.Field{{Name: ParquetPath, Type: arrow.BinaryTypes.String}}
	if labels != nil {
		fields = append(fields, arrow.Field{Name: ParquetLabel, Type: arrow.BinaryTypes.String, Nullable: true})
	}
	fields = append(fields, arrow.Field{Name: ParquetFeature, Type: arrow.FixedSizeListOf(int32(dim), arrow.PrimitiveTypes.Float32)})
	schema := arrow.NewSchema(fields, &md)
	group := rowGroupRows(dim)
	// No dictionary but for the classes: paths are unique and features
	// continuous, and trying one first made writing 3 times as slow (a
	// shard of 3,100 rows of 256: 78 against 25 ms).
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithMaxRowGroupLength(int64(group)),
		parquet.WithDictionaryDefault(false), parquet.WithDictionaryFor(ParquetLabel, true), parquet.WithDataPageSize(64<<10))
	pw, err := pqarrow.NewFileWriter(schema, w, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return err
	}
	// Records of at most parquetBatch rows, buffered into row groups of
	// group rows, in pages of 64 KiB: Arrow's writer builds a record's list
	// levels (4 bytes a value) and a page's buffers in Go's heap, and one
	// record of a whole shard in pages of 1 MiB made 7 times the features'
	// size of garbage: embed's Go heap peaked at 95 MB against 53 MB for
	// its .npy shards (40,000 images, 64 shards); 60 to 67 MB so.
	listType := fields[len(fields)-1].Type
	for lo := 0; lo < len(paths); lo += parquetBatch {
		hi := min(lo+parquetBatch, len(paths))
		cols := []arrow.Array{stringArray(paths[lo:hi], false)}
		if labels != nil {
			cols = append(cols, stringArray(labels[lo:hi], true))
		}
		// The features as they are, not copied: Arrow's float32 buffer over
		// the slice's bytes (little-endian, as Arrow's memory is here).
		vals := f.Data[lo*dim : hi*dim]
		raw := memory.NewBufferBytes(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(vals))), 4*len(vals)))
		valData := array.NewData(arrow.PrimitiveTypes.Float32, len(vals), []*memory.Buffer{nil, raw}, nil, 0, 0)
		listData := array.NewData(listType, hi-lo, []*memory.Buffer{nil}, []arrow.ArrayData{valData}, 0, 0)
		cols = append(cols, array.NewFixedSizeListData(listData))
		valData.Release()
		listData.Release()
		rec := array.NewRecordBatch(schema, cols, int64(hi-lo))
		err := pw.WriteBuffered(rec)
		rec.Release()
		for _, c := range cols {
			c.Release()
		}
		if err != nil {
			pw.Close()
			return err
		}
	}
	return pw.Close()
}

// stringArray is an Arrow string array of s ("" as null when nullEmpty).
func stringArray(s []string, nullEmpty bool) arrow.Array {
	b := array.NewStringBuilder(memory.DefaultAllocator)
	defer b.Release()
	b.Reserve(len(s))
	for _, v := range s {
		if nullEmpty && v == "" {
			b.AppendNull()
		} else {
			b.Append(v)
		}
	}
	return b.NewArray()
}

// parquetBatch is how many rows writeParquet hands Arrow's writer at once.
const parquetBatch = 1024

// rowGroupRows is how many rows of dim features a row group holds:
// ParquetRowGroup, fewer for features wider than 256 values.
func rowGroupRows(dim int) int {
	return max(1, min(ParquetRowGroup, ParquetRowGroupBytes/(4*max(dim, 1))))
}

// ModuleVersion is the version of this module in the running binary: its
// module version, else the commit it was built from (with "+dirty" for
// uncommitted changes), else "devel".
func ModuleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	const path = "github.com/infomax/infomax"
	if bi.Main.Path != path {
		for _, d := range bi.Deps {
			if d.Path == path && d.Version != "" {
				return d.Version
			}
		}
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return rev + dirty
}

// isParquet says whether raw is a Parquet file (by its leading magic).
func isParquet(raw []byte) bool { return bytes.HasPrefix(raw, []byte(parquetMagic)) }

// parquetTable is what a Parquet file of features holds.
type parquetTable struct {
	ix     *Index   // paths, features and provenance (Run as recorded)
	runRel string   // the run relative to the file's folder
	labels []string // its label column ("" for null); nil without one
}

// parseParquet reads an index written by SaveParquet (or any Parquet file
// of its schema).
func parseParquet(ctx context.Context, raw []byte) (*Index, string, error) {
	t, err := readParquet(ctx, raw)
	if err != nil {
		return nil, "", err
	}
	return t.ix, t.runRel, nil
}

// readParquet reads a Parquet file of features, checking the schema, the
// dimension its metadata states and the size it claims before decoding.
func readParquet(ctx context.Context, raw []byte) (t *parquetTable, err error) {
	// Arrow's Parquet decoders panic on some corrupt metadata (an unknown
	// logical type, a negative length): a hostile file is an error here.
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, fmt.Errorf("a corrupt Parquet file (its decoder failed: %v)", r)
		}
	}()
	if err := checkFooter(raw); err != nil {
		return nil, err
	}
	mem := &budget{inner: memory.DefaultAllocator}
	mem.left.Store(parquetBudget(len(raw)))
	pr, err := file.NewParquetReader(bytes.NewReader(raw), file.WithReadProps(parquet.NewReaderProperties(mem)))
	if err != nil {
		return nil, fmt.Errorf("not a readable Parquet file (truncated or corrupt footer?): %w", err)
	}
	defer pr.Close()
	kv := pr.MetaData().KeyValueMetadata()
	meta := func(k string) string {
		if v := kv.FindValue(k); v != nil {
			return *v
		}
		return ""
	}
	// The Arrow schema a writer may store in the metadata (ARROW:schema, a
	// flatbuffer) is not read: a corrupt one makes Arrow's decoder allocate
	// what its counts claim (a fuzzed file asked for 132 GiB). The Parquet
	// schema says all an index needs; its fixed-size list reads as a list.
	for _, e := range pr.MetaData().KeyValueMetadata() {
		if e != nil && e.Key == "ARROW:schema" {
			e.Key = "ARROW:schema (not read)"
		}
	}
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: ParquetRowGroup}, mem)
	if err != nil {
		return nil, fmt.Errorf("Parquet schema: %w", err)
	}
	schema, err := fr.Schema()
	if err != nil {
		return nil, fmt.Errorf("Parquet schema: %w", err)
	}
	pi, fi, li := schema.FieldIndices(ParquetPath), schema.FieldIndices(ParquetFeature), schema.FieldIndices(ParquetLabel)
	if len(pi) != 1 || len(fi) != 1 || schema.Field(pi[0]).Type.ID() != arrow.STRING || len(li) > 1 {
		return nil, fmt.Errorf("not an index of this project's schema: want a string column %q and a fixed-size list of float32 %q, found %s", ParquetPath, ParquetFeature, schema)
	}
	// The feature column: a list of float32 whose rows all have one length.
	// SaveParquet writes a fixed-size list; with ARROW:schema not read, it
	// reads back as the list Parquet stores, as do the lists DuckDB, pandas
	// or Spark write.
	if ft, ok := schema.Field(fi[0]).Type.(*arrow.ListType); !ok || ft.Elem().ID() != arrow.FLOAT32 {
		return nil, fmt.Errorf("column %q is %s: want a fixed-size list of float32", ParquetFeature, schema.Field(fi[0]).Type)
	}
	if len(li) == 1 && schema.Field(li[0]).Type.ID() != arrow.STRING {
		return nil, fmt.Errorf("column %q is %s: want a string (null for an image without a class)", ParquetLabel, schema.Field(li[0]).Type)
	}
	dim := 0 // the metadata's, else the first row's
	if d := meta(ParquetMetaDim); d != "" {
		if dim, err = strconv.Atoi(d); err != nil || dim <= 0 || dim > maxDim {
			return nil, fmt.Errorf("metadata %s = %q: want a dimension from 1 to %d", ParquetMetaDim, d, maxDim)
		}
	}
	rows := pr.NumRows()
	if rows < 0 || rows > maxImages || rows*int64(max(dim, 1))*4 > maxIndexBytes {
		return nil, fmt.Errorf("%d rows of dimension %d: more than an index may hold", rows, dim)
	}
	// What the row groups say they decode to, against what they can hold (a
	// small file cannot make gigabytes appear); and every column chunk must
	// lie inside the file before Arrow seeks to it: its reader allocates what
	// a chunk's length claims (a negative one panics in it, a huge one
	// exhausts memory).
	size := int64(len(raw))
	var decoded int64
	for i := range pr.NumRowGroups() {
		rg := pr.MetaData().RowGroup(i)
		decoded += rg.TotalByteSize()
		for c := range rg.NumColumns() {
			cc, err := rg.ColumnChunk(c)
			if err != nil {
				return nil, fmt.Errorf("row group %d, column %d: %w", i, c, err)
			}
			start, n := cc.DataPageOffset(), cc.TotalCompressedSize()
			if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 && cc.DictionaryPageOffset() < start {
				start = cc.DictionaryPageOffset()
			}
			if start < 4 || n < 0 || start > size || n > size-start || cc.TotalUncompressedSize() < 0 || cc.TotalUncompressedSize() > maxIndexBytes {
				return nil, fmt.Errorf("row group %d, column %d: its chunk claims %d bytes at offset %d of a %d-byte file: corrupt", i, c, n, start, size)
			}
		}
	}
	if want := rows*int64(dim)*4 + rows*4; decoded < 0 || decoded > maxIndexBytes || decoded < want/2 {
		return nil, fmt.Errorf("its row groups claim %d decoded bytes for %d rows of dimension %d: corrupt", decoded, rows, dim)
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading its rows: %w", err)
	}
	defer tbl.Release()
	ix := &Index{Run: meta(ParquetMetaRun), ConfigHash: meta(ParquetMetaConfigHash), Precision: meta(ParquetMetaPrecision),
		Feature: meta(ParquetMetaFeature), Features: knn.Features{Dim: dim}, Paths: make([]string, 0, rows)}
	if s := meta(ParquetMetaStep); s != "" {
		if ix.Step, err = strconv.ParseInt(s, 10, 64); err != nil {
			return nil, fmt.Errorf("metadata %s = %q: %w", ParquetMetaStep, s, err)
		}
	}
	for _, c := range tbl.Column(pi[0]).Data().Chunks() {
		s := c.(*array.String)
		for i := range s.Len() {
			if s.IsNull(i) {
				return nil, fmt.Errorf("row %d has no %s", len(ix.Paths), ParquetPath)
			}
			ix.Paths = append(ix.Paths, s.Value(i))
		}
	}
	for _, c := range tbl.Column(fi[0]).Data().Chunks() {
		l := c.(*array.List)
		if l.NullN() > 0 {
			return nil, fmt.Errorf("a row without its %s", ParquetFeature)
		}
		v := l.ListValues().(*array.Float32).Float32Values()
		for i := range l.Len() {
			lo, hi := l.ValueOffsets(i)
			n := int(hi - lo)
			first := len(ix.Features.Data) == 0
			if first && dim == 0 {
				dim, ix.Features.Dim = n, n
			}
			switch {
			case first && n != dim:
				return nil, fmt.Errorf("its metadata says dimension %d, its %q rows hold %d", dim, ParquetFeature, n)
			case n != dim || n == 0 || n > maxDim:
				return nil, fmt.Errorf("row %d's %s has %d values, the rows before %d", len(ix.Features.Data)/max(dim, 1), ParquetFeature, n, dim)
			}
			ix.Features.Data = append(ix.Features.Data, v[lo:hi]...)
		}
	}
	t = &parquetTable{ix: ix, runRel: meta(ParquetMetaRunRel)}
	if len(li) == 1 {
		t.labels = make([]string, 0, rows)
		for _, c := range tbl.Column(li[0]).Data().Chunks() {
			s := c.(*array.String)
			for i := range s.Len() {
				t.labels = append(t.labels, s.Value(i)) // "" when null
			}
		}
		if len(t.labels) != len(ix.Paths) {
			return nil, fmt.Errorf("%d labels for %d paths", len(t.labels), len(ix.Paths))
		}
	}
	if err := ix.check(); err != nil {
		return nil, err
	}
	return t, nil
}

// parquetBudget bounds what decoding a Parquet file of size bytes may
// allocate: 256 MiB, plus 16 times its size (float32 features compress
// little; a page header that claims 2^38 values asks far more).
func parquetBudget(size int) int64 { return 256<<20 + 16*int64(size) }

// budget is an Arrow allocator that refuses, by a panic that parseParquet
// turns into an error, to allocate past what is left of its budget.
type budget struct {
	inner memory.Allocator
	left  atomic.Int64
}

func (b *budget) take(n int) {
	if b.left.Add(-int64(n)) < 0 {
		panic(fmt.Sprintf("decoding it would allocate more than %d bytes beyond its budget: its pages claim more values than it holds", n))
	}
}

func (b *budget) Allocate(size int) []byte {
	b.take(size)
	return b.inner.Allocate(size)
}

func (b *budget) Reallocate(size int, buf []byte) []byte {
	b.take(size - len(buf))
	return b.inner.Reallocate(size, buf)
}

func (b *budget) Free(buf []byte) {
	b.left.Add(int64(len(buf)))
	b.inner.Free(buf)
}
