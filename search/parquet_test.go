package search

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/infomax/infomax/knn"
	"github.com/infomax/infomax/testkit/testmodel"
)

// parquetIndex is an index of n rows of dimension dim, seeded values.
func parquetIndex(n, dim int) *Index {
	ix := &Index{Run: "/runs/x", ConfigHash: "abc123", Step: 7, Precision: "float32", Features: knn.Features{Dim: dim, Data: make([]float32, n*dim)}}
	for i := range n {
		ix.Paths = append(ix.Paths, fmt.Sprintf("images/class %c/%s%05d.png", 'a'+i%5, strings.Repeat("é", i%3), i))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range ix.Features.Data {
		ix.Features.Data[i] = float32(rng.NormFloat64())
	}
	return ix
}

func parquetBytes(t testing.TB, ix *Index) []byte {
	p := filepath.Join(t.TempDir(), "x.parquet")
	if err := ix.SaveParquet(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// An index saved as Parquet loads back the same: paths, every feature bit
// for bit, and the model's metadata; several row groups when it is large.
func TestParquetRoundTrip(t *testing.T) {
	for _, c := range []struct{ n, dim, groups int }{{1, 16, 1}, {10, 16, 1}, {ParquetRowGroup + 3, 16, 2}, {1030, 4096, 2}} {
		ix := parquetIndex(c.n, c.dim)
		p := filepath.Join(t.TempDir(), "index.parquet")
		if err := ix.SaveParquet(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		got, err := Load(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Paths, ix.Paths) || !slices.Equal(got.Features.Data, ix.Features.Data) || got.Features.Dim != c.dim ||
			got.ConfigHash != ix.ConfigHash || got.Step != ix.Step || got.Precision != ix.Precision || got.Run != ix.Run {
			t.Errorf("%d rows of %d: the Parquet index loads back differently", c.n, c.dim)
		}
		// Row groups of at most 16 MiB of features: 16,384 rows of 16
		// values, 1,024 of a 4×4×256 map.
		pf, err := file.OpenParquetFile(p, false)
		if err != nil {
			t.Fatal(err)
		}
		if g := pf.NumRowGroups(); g != c.groups {
			t.Errorf("%d rows of %d: %d row groups, want %d", c.n, c.dim, g, c.groups)
		}
		pf.Close()
	}
}

// otherParquet writes a table of its own schema, as another program might.
func otherParquet(t *testing.T, schema *arrow.Schema, fill func(b *array.RecordBuilder)) []byte {
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	fill(b)
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(schema, &buf, nil, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Parquet files of another schema, another dimension than their metadata
// says, or a truncated footer: an error naming the file and what is wrong.
func TestHostileParquetIndexes(t *testing.T) {
	good := parquetBytes(t, parquetIndex(20, 8))
	md := arrow.NewMetadata([]string{ParquetMetaDim}, []string{"9"})
	otherDim := otherParquet(t, arrow.NewSchema([]arrow.Field{
		{Name: ParquetPath, Type: arrow.BinaryTypes.String},
		{Name: ParquetFeature, Type: arrow.FixedSizeListOf(8, arrow.PrimitiveTypes.Float32)},
	}, &md), func(b *array.RecordBuilder) {
		b.Field(0).(*array.StringBuilder).Append("a.png")
		b.Field(1).(*array.FixedSizeListBuilder).Append(true)
		b.Field(1).(*array.FixedSizeListBuilder).ValueBuilder().(*array.Float32Builder).AppendValues(make([]float32, 8), nil)
	})
	otherSchema := otherParquet(t, arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "embedding", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
	}, nil), func(b *array.RecordBuilder) {
		b.Field(0).(*array.Int64Builder).Append(1)
		b.Field(1).(*array.ListBuilder).Append(true)
		b.Field(1).(*array.ListBuilder).ValueBuilder().(*array.Float64Builder).Append(0.5)
	})
	doubles := otherParquet(t, arrow.NewSchema([]arrow.Field{
		{Name: ParquetPath, Type: arrow.BinaryTypes.String},
		{Name: ParquetFeature, Type: arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Float64)},
	}, nil), func(b *array.RecordBuilder) {
		b.Field(0).(*array.StringBuilder).Append("a.png")
		b.Field(1).(*array.FixedSizeListBuilder).Append(true)
		b.Field(1).(*array.FixedSizeListBuilder).ValueBuilder().(*array.Float64Builder).AppendValues([]float64{1, 2}, nil)
	})
	for name, c := range map[string]struct {
		raw  []byte
		want string
	}{
		"truncated footer":        {good[:len(good)-9], "truncated or corrupt footer"},
		"cut in half":             {good[:len(good)/2], "truncated or corrupt footer"},
		"another schema":          {otherSchema, "not an index of this project's schema"},
		"float64 features":        {doubles, "want a fixed-size list of float32"},
		"metadata says dimension": {otherDim, "metadata says dimension 9"},
	} {
		p := filepath.Join(t.TempDir(), "x.parquet")
		os.WriteFile(p, c.raw, 0o644)
		_, err := Load(t.Context(), p)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want %q naming the file", name, err, c.want)
		}
	}
}

// FuzzParquet: no Parquet file, however corrupt, panics the reader or yields
// an index whose features and paths disagree.
func FuzzParquet(f *testing.F) {
	for i, ix := range []*Index{parquetIndex(3, 4), parquetIndex(40, 2)} {
		var labels []string // an embed shard's label column in the second
		if i == 1 {
			labels = make([]string, len(ix.Paths))
			for j := range labels {
				labels[j] = []string{"", "cat", "dog"}[j%3]
			}
		}
		var b bytes.Buffer
		if err := writeParquet(&b, ix.Paths, labels, ix.Features, ix.provenance("")); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := readParquet(context.Background(), b)
		if err != nil {
			return
		}
		if ix := tb.ix; ix.Features.Dim*len(ix.Paths) != len(ix.Features.Data) || tb.labels != nil && len(tb.labels) != len(ix.Paths) {
			t.Fatalf("%d paths of dimension %d, %d values, %d labels", len(ix.Paths), ix.Features.Dim, len(ix.Features.Data), len(tb.labels))
		}
	})
}

// The data stack's own readers, real ones: pyarrow and DuckDB (from the
// project's .venv) read the Parquet index; the features equal Go's bit for
// bit, the metadata round-trips, and DuckDB's cosine nearest neighbours of a
// row, with list_cosine_similarity (DuckDB reads the column as FLOAT[]), are the ones package search finds.
func TestParquetReadByPyArrowAndDuckDB(t *testing.T) {
	py := testmodel.Python(t)
	ix := parquetIndex(300, 16)
	dir := t.TempDir()
	p := filepath.Join(dir, "index.parquet")
	if err := ix.SaveParquet(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	query := 17
	hits, err := ix.Search(t.Context(), knn.Features{Dim: 16, Data: ix.Features.Data[query*16 : (query+1)*16]}, 3, knn.Cosine)
	if err != nil {
		t.Fatal(err)
	}
	script := `
import sys, duckdb, numpy as np, pyarrow.parquet as pq
path, query = sys.argv[1], int(sys.argv[2])
t = pq.read_table(path)
meta = pq.read_metadata(path).metadata
feats = np.stack(t.column("feature").to_numpy(zero_copy_only=False)).astype(np.float32)
sys.stdout.buffer.write(feats.tobytes())
sys.stderr.write("meta %s %s %s %s\n" % (meta[b"infomax.config_hash"].decode(), meta[b"infomax.step"].decode(), meta[b"infomax.dim"].decode(), t.schema.field("feature").type))
con = duckdb.connect()
n = con.execute("SELECT count(*) FROM read_parquet(?)", [path]).fetchone()[0]
rows = con.execute("""
  WITH q AS (SELECT feature FROM read_parquet(?) LIMIT 1 OFFSET ?)
  SELECT p.path FROM read_parquet(?) p, q
  ORDER BY list_cosine_similarity(p.feature, q.feature) DESC LIMIT 3""", [path, query, path]).fetchall()
sys.stderr.write("duckdb %d %s\n" % (n, "|".join(r[0] for r in rows)))
`
	cmd := exec.Command(py, "-c", script, p, "17")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pyarrow and DuckDB: %v\n%s", err, stderr.String())
	}
	want := make([]byte, 0, 4*len(ix.Features.Data))
	for _, v := range ix.Features.Data {
		want = binary.LittleEndian.AppendUint32(want, math.Float32bits(v))
	}
	if !bytes.Equal(out, want) {
		t.Errorf("pyarrow's features differ from Go's (%d bytes against %d)", len(out), len(want))
	}
	lines := stderr.String()
	if !strings.Contains(lines, "meta abc123 7 16 fixed_size_list<element: float>[16]") {
		t.Errorf("pyarrow's metadata and type: %s", lines)
	}
	var names []string
	for _, h := range hits[0] {
		names = append(names, h.Path)
	}
	if wantLine := "duckdb 300 " + strings.Join(names, "|"); !strings.Contains(lines, wantLine) {
		t.Errorf("DuckDB: %s\nwant %s", lines, wantLine)
	}
}

// A folder of Parquet parts (embed's output) whose parts disagree with its
// embedding.json, or are cut short: each error names the part and what is
// wrong.
func TestHostileParquetFolders(t *testing.T) {
	ctx := t.Context()
	ix := parquetIndex(12, 8)
	labels := make([]string, 12)
	for i := range labels {
		labels[i] = []string{"cat", "", "dog"}[i%3]
	}
	prov := Provenance{Run: ix.Run, ConfigHash: ix.ConfigHash, Step: ix.Step, Precision: ix.Precision}
	folder := func(sh *Shard, p Provenance, m Embedding) (string, string) {
		dir := t.TempDir()
		if err := sh.SaveParquet(ctx, filepath.Join(dir, "part-00000-of-00001.parquet"), p); err != nil {
			t.Fatal(err)
		}
		m.Kind, m.Format, m.Shards, m.Images = EmbeddingKind, FormatParquet, []string{"part-00000-of-00001"}, len(sh.Paths)
		m.ConfigHash, m.Step, m.Dim = cmp.Or(m.ConfigHash, ix.ConfigHash), cmp.Or(m.Step, ix.Step), cmp.Or(m.Dim, 8)
		raw, _ := json.Marshal(m)
		os.WriteFile(filepath.Join(dir, ParquetEmbeddingFile), raw, 0o644)
		return dir, filepath.Join(dir, "part-00000-of-00001.parquet")
	}
	labelled := &Shard{Paths: ix.Paths, Features: ix.Features, Labels: labels}

	// A whole one reads back: paths, features bit for bit, and null labels
	// as "".
	dir, _ := folder(labelled, prov, Embedding{Labels: "folders"})
	m, err := ReadEmbedding(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := ReadShard(ctx, dir, m, m.Shards[0])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sh.Paths, ix.Paths) || !slices.Equal(sh.Features.Data, ix.Features.Data) || !slices.Equal(sh.Labels, labels) {
		t.Errorf("the part reads back differently: labels %q", sh.Labels)
	}

	cases := map[string]struct {
		dir, part, want string
	}{}
	add := func(name string, sh *Shard, p Provenance, m Embedding, want string) {
		dir, part := folder(sh, p, m)
		cases[name] = struct{ dir, part, want string }{dir, part, want}
	}
	add("another dimension", labelled, prov, Embedding{Labels: "folders", Dim: 16}, "features of dimension 8, ")
	other := prov
	other.ConfigHash = "fff"
	add("another model", labelled, other, Embedding{Labels: "folders"}, "made by the model of spec fff")
	add("no label column", &Shard{Paths: ix.Paths, Features: ix.Features}, prov, Embedding{Labels: "folders"}, `no "label" column`)
	conv := prov
	conv.Feature = "conv"
	add("another feature", labelled, conv, Embedding{Labels: "folders"}, `feature "conv"`)
	dir, part := folder(labelled, prov, Embedding{Labels: "folders"})
	raw, _ := os.ReadFile(part)
	os.WriteFile(part, raw[:len(raw)-20], 0o644)
	cases["truncated"] = struct{ dir, part, want string }{dir, part, "truncated or corrupt footer"}
	dir, part = folder(labelled, prov, Embedding{Labels: "folders"})
	os.WriteFile(part, []byte("path,feature\n"), 0o644)
	cases["not Parquet"] = struct{ dir, part, want string }{dir, part, "not a Parquet file"}
	for name, c := range cases {
		_, err := Load(ctx, c.dir)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.part) {
			t.Errorf("%s: %v, want %q naming %s", name, err, c.want, c.part)
		}
	}
}
