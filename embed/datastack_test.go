package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/infomax/infomax/encoder"
	"github.com/infomax/infomax/search"
	"github.com/infomax/infomax/testkit/emulators"
	"github.com/infomax/infomax/testkit/testmodel"
)

// dataStackScript is what a user of the data stack runs on embed's Parquet
// output: pyarrow reads the parts straight from the S3 bucket (its own S3
// client, sent to the test's server by endpoint_override) and copies them
// to a local folder; DuckDB, pandas and Polars read that folder. It writes
// the features in path order (float32, little-endian) to stdout and one
// line per reader to stderr.
const dataStackScript = `
import sys
import duckdb, numpy as np, pandas as pd, polars as pl
import pyarrow.dataset as ds, pyarrow.fs as pafs, pyarrow.parquet as pq

endpoint, prefix, local, query = sys.argv[1:5]
s3 = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", access_key="test", secret_key="test", region="us-east-1")
infos = s3.get_file_info(pafs.FileSelector(prefix))
parts = sorted(i.path for i in infos if i.path.endswith(".parquet"))
t = ds.dataset(parts, filesystem=s3, format="parquet").to_table().sort_by("path")
meta = pq.read_metadata(parts[0], filesystem=s3).metadata
feats = np.stack(t.column("feature").to_numpy(zero_copy_only=False)).astype("<f4")
sys.stdout.buffer.write(feats.tobytes())
sys.stderr.write("pyarrow %d parts, %d rows, step %s, dim %s, feature %s, %s\n" % (
    len(parts), t.num_rows, meta[b"infomax.step"].decode(), meta[b"infomax.dim"].decode(),
    meta[b"infomax.feature"].decode(), t.schema.field("feature").type))
labels = t.column("label").to_pylist()
sys.stderr.write("labels %s\n" % "|".join(sorted(set(labels))))

pafs.copy_files(prefix, local, source_filesystem=s3, destination_filesystem=pafs.LocalFileSystem())
con = duckdb.connect()
glob = local + "/*.parquet"
n = con.execute("SELECT count(*) FROM read_parquet(?)", [glob]).fetchone()[0]
rows = con.execute("""
  SELECT p.path FROM read_parquet(?) p,
    (SELECT feature FROM read_parquet(?) WHERE path = ?) q
  ORDER BY list_cosine_similarity(p.feature, q.feature) DESC LIMIT 5""", [glob, glob, query]).fetchall()
sys.stderr.write("duckdb %d %s\n" % (n, "|".join(r[0] for r in rows)))

df = pd.read_parquet(local)            # the folder: _embedding.json and _bad.txt are skipped
sys.stderr.write("pandas %d %s\n" % (len(df), "|".join(sorted(df["label"].dropna().unique()))))
pf = pl.read_parquet(glob)
sys.stderr.write("polars %d %d %s\n" % (pf.height, pf["feature"].dtype.size, pf["feature"].dtype))
`

// The check: embed --format parquet --output s3://… against a
// local S3 server; pyarrow reads the parts straight from the bucket, DuckDB,
// pandas and Polars read them as local files, all agree with the images
// embedded (pyarrow's features equal the encoder's, bit for bit), and the
// nearest neighbours by DuckDB are `runner search`'s.
func TestParquetInS3ReadByTheDataStack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the embed and runner binaries")
	}
	py := testmodel.Python(t)
	emu := emulators.Start(t, "emb")
	ctx := context.Background()
	tmp := t.TempDir()
	runDir, err := testmodel.Run(filepath.Join(tmp, "run"))
	if err != nil {
		t.Fatal(err)
	}
	folder := filepath.Join(testmodel.FashionMNISTFolder(t, 120, 0), "train")
	bins := map[string]string{}
	for _, name := range []string{"embed", "runner"} {
		bins[name] = filepath.Join(tmp, name)
		if out, err := exec.Command("go", "build", "-o", bins[name], "../"+name).CombinedOutput(); err != nil {
			t.Fatalf("go build ./%s: %v\n%s", name, err, out)
		}
	}
	const out = "s3://emb/fashion/parquet"
	cmd := exec.Command(bins["embed"], "--run-dir", runDir, "--input", folder, "--output", out, "--format", "parquet", "--classes", "folders", "--shards", "4")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("embed --format parquet --output %s: %v\n%s", out, err, b)
	}

	// What the images embed to, in one process, in path order.
	ix, err := search.Load(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	order := slices.Clone(ix.Paths)
	slices.Sort(order)
	enc, err := encoder.Load(ctx, runDir)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	direct, err := enc.EncodeFiles(ctx, order...)
	if err != nil {
		t.Fatal(err)
	}
	if len(order) != 120 {
		t.Fatalf("%d images in %s, want 120", len(order), out)
	}
	// The bucket's rows by path, as the index holds them.
	d := ix.Features.Dim
	row := map[string]int{}
	for i, p := range ix.Paths {
		row[p] = i
	}
	var stored []byte
	for _, p := range order {
		for _, v := range ix.Features.Data[row[p]*d : (row[p]+1)*d] {
			stored = binary.LittleEndian.AppendUint32(stored, math.Float32bits(v))
		}
	}
	maxDiff := 0.0
	for i, p := range order {
		for k := range d {
			maxDiff = max(maxDiff, math.Abs(float64(direct[i*d+k]-ix.Features.Data[row[p]*d+k])))
		}
	}
	// Other batches, other sums' rounding where TensorFlow runs Eigen's
	// kernels (see TestEmbedFromGCSToS3).
	if maxDiff > 1e-6 {
		t.Errorf("the bucket's features differ from the images encoded in one process by up to %g", maxDiff)
	}

	var classes []string
	for _, p := range order {
		classes = append(classes, filepath.Base(filepath.Dir(p)))
	}
	slices.Sort(classes)
	classes = slices.Compact(classes)

	query := order[17]
	local := filepath.Join(tmp, "copy")
	os.MkdirAll(local, 0o755)
	py1 := exec.Command(py, "-c", dataStackScript, emu.S3URL, strings.TrimPrefix(out, "s3://"), local, query)
	// gofakes3 keeps an upload's headers as the object's metadata and sends
	// them back with every GET, ranged ones too: the whole object's
	// x-amz-checksum-crc32 beside a part of it, which the AWS C++ SDK in
	// pyarrow refuses ("Response checksums mismatch"); S3 sends no checksum
	// with a ranged GET. Validation only when a request asks for it:
	py1.Env = append(os.Environ(), "AWS_RESPONSE_CHECKSUM_VALIDATION=when_required")
	var stderr bytes.Buffer
	py1.Stderr = &stderr
	feats, err := py1.Output()
	if err != nil {
		t.Fatalf("pyarrow, DuckDB, pandas, Polars: %v\n%s", err, stderr.String())
	}
	lines := stderr.String()
	t.Logf("the data stack's readers:\n%s", lines)
	if !bytes.Equal(feats, stored) {
		t.Errorf("pyarrow's features from the bucket differ from Go's (%d bytes against %d)", len(feats), len(stored))
	}
	for _, want := range []string{
		"pyarrow 4 parts, 120 rows, step " + strconv.FormatInt(enc.Step, 10) + ", dim " + strconv.Itoa(d) + ", feature z_mean, fixed_size_list<element: float>[" + strconv.Itoa(d) + "]",
		"labels " + strings.Join(classes, "|"), // each image's folder
		"pandas 120 " + strings.Join(classes, "|"),
		"polars 120 " + strconv.Itoa(d),
	} {
		if !strings.Contains(lines, want) {
			t.Errorf("want %q in:\n%s", want, lines)
		}
	}

	res, err := exec.Command(bins["runner"], "search", "--index", out, "--query", query, "-k", "5").CombinedOutput()
	if err != nil {
		t.Fatalf("runner search --index %s: %v\n%s", out, err, res)
	}
	var hits []string
	for _, l := range strings.Split(strings.TrimSpace(string(res)), "\n") {
		if f := strings.Fields(l); len(f) == 3 {
			hits = append(hits, f[2])
		}
	}
	if want := "duckdb 120 " + strings.Join(hits, "|"); len(hits) != 5 || !strings.Contains(lines, want) {
		t.Errorf("DuckDB's nearest neighbours differ from runner search's:\n%s\nrunner search:\n%s", lines, res)
	}
}
