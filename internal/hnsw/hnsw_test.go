package hnsw

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/infomax/infomax/testkit/brute"
)

// unitRows are n rows of dimension d around 20 centres, normalised.
func unitRows(seed uint64, n, d int) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	centres := brute.Normal(rand.New(rand.NewPCG(99, 1)), 20, d)
	x := brute.Normal(r, n, d)
	for i := 0; i < n; i++ {
		c := centres[r.IntN(20)*d:][:d]
		row := x[i*d : (i+1)*d]
		ss := 0.0
		for j := range row {
			row[j] = c[j] + 0.3*row[j]
			ss += float64(row[j]) * float64(row[j])
		}
		for j := range row {
			row[j] /= float32(math.Sqrt(ss))
		}
	}
	return x
}

func build(t testing.TB, n, d int) (*Index, []float32) {
	t.Helper()
	data := unitRows(1, n, d)
	ix, err := Build(data, d, Params{M: 16, EfConstruction: 100}, 7)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ix.Close)
	return ix, data
}

// Recall@10 against brute force (cosine on unit rows is the inner
// product), and the similarities it gives are the true ones.
func TestRecallAgainstBruteForce(t *testing.T) {
	const n, d, nq, k = 3000, 32, 100, 10
	ix, data := build(t, n, d)
	queries := unitRows(2, nq, d)
	labels, sims, err := ix.Search(queries, k, 64)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for q := 0; q < nq; q++ {
		idx, sim := brute.Cosine(data, queries, d, q)
		want := map[int64]bool{}
		for _, i := range idx[:k] {
			want[int64(i)] = true
		}
		for j := 0; j < k; j++ {
			l := labels[q*k+j]
			if want[l] {
				found++
			}
			if math.Abs(float64(sims[q*k+j])-sim[l]) > 1e-5 {
				t.Fatalf("query %d: row %d's similarity %v, brute force %v", q, l, sims[q*k+j], sim[l])
			}
			if j > 0 && sims[q*k+j] > sims[q*k+j-1] {
				t.Fatalf("query %d: not best first: %v", q, sims[q*k:(q+1)*k])
			}
		}
	}
	recall := float64(found) / (nq * k)
	t.Logf("recall@10 %.4f (M 16, efConstruction 100, efSearch 64, %d rows)", recall, n)
	if recall < 0.95 {
		t.Errorf("recall@10 %.4f, want at least 0.95", recall)
	}
}

// Saved and loaded, an index answers as it did; what it holds passes Check.
func TestSaveLoad(t *testing.T) {
	const n, d = 500, 16
	ix, _ := build(t, n, d)
	raw, err := ix.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	h, err := Check(raw, n, d)
	if err != nil || h.M != 16 || h.EfConstruction != 100 {
		t.Fatalf("Check of a saved index: %+v, %v", h, err)
	}
	back, err := Load(raw, n, d)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	q := unitRows(3, 20, d)
	l1, s1, err1 := ix.Search(q, 5, 40)
	l2, s2, err2 := back.Search(q, 5, 40)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	for i := range l1 {
		if l1[i] != l2[i] || s1[i] != s2[i] {
			t.Fatalf("result %d: %d (%v) before saving, %d (%v) loaded", i, l1[i], s1[i], l2[i], s2[i])
		}
	}
	if _, err := Check(raw, n+1, d); err == nil || !strings.Contains(err.Error(), "500 elements") {
		t.Errorf("an index of 500 rows for 501: %v", err)
	}
	if _, err := Check(raw, n, d+1); err == nil || !strings.Contains(err.Error(), "element layout") {
		t.Errorf("an index of dimension 16 for 17: %v", err)
	}
}

// Each damage to a file is refused by Check, naming what is wrong, before
// hnswlib reads it.
func TestHostileIndexFiles(t *testing.T) {
	const n, d = 300, 8
	ix, _ := build(t, n, d)
	raw, err := ix.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	size := int(le.Uint64(raw[24:]))
	level0 := headerBytes + n*size
	// The first upper-level list that is not empty.
	upper := -1
	for off, i := level0, 0; i < n; i++ {
		s := int(le.Uint32(raw[off:]))
		if s > 0 && upper < 0 {
			upper = off + 4
		}
		off += 4 + s
	}
	if upper < 0 {
		t.Fatal("no element above level 0")
	}
	cases := []struct {
		name, want string
		edit       func(b []byte) []byte
	}{
		{"empty", "shorter than its", func(b []byte) []byte { return nil }},
		{"header cut", "shorter than its", func(b []byte) []byte { return b[:50] }},
		{"rows cut", "elements need", func(b []byte) []byte { return b[:level0-1] }},
		{"upper levels cut", "cut short", func(b []byte) []byte { return b[:len(b)-1] }},
		{"a byte more", "after the last element", func(b []byte) []byte { return append(b, 0) }},
		{"more elements", "elements", func(b []byte) []byte { le.PutUint64(b[16:], 1<<40); return b }},
		{"M", "M ", func(b []byte) []byte { le.PutUint64(b[72:], 1000); return b }},
		{"layout", "element layout", func(b []byte) []byte { le.PutUint64(b[24:], uint64(size)+4); return b }},
		{"top level", "top level", func(b []byte) []byte { le.PutUint32(b[48:], 1000); return b }},
		{"entry point", "entry point", func(b []byte) []byte { le.PutUint32(b[52:], n); return b }},
		{"multiplier", "level multiplier", func(b []byte) []byte { le.PutUint64(b[80:], math.Float64bits(math.NaN())); return b }},
		{"neighbour count", "neighbours, at most", func(b []byte) []byte { le.PutUint16(b[headerBytes:], 999); return b }},
		{"neighbour", "neighbour 300 of 300 rows", func(b []byte) []byte {
			le.PutUint16(b[headerBytes:], 1)
			le.PutUint32(b[headerBytes+4:], n)
			return b
		}},
		{"label", "or a row twice", func(b []byte) []byte {
			off := headerBytes + int(le.Uint64(b[32:]))
			le.PutUint64(b[off:], 5)
			return b
		}},
		{"upper list size", "bytes of upper levels", func(b []byte) []byte {
			le.PutUint32(b[upper-4:], le.Uint32(b[upper-4:])+1)
			return b
		}},
		{"upper neighbour", "of 300 rows", func(b []byte) []byte {
			le.PutUint16(b[upper:], 1)
			le.PutUint32(b[upper+4:], 1<<20)
			return b
		}},
	}
	for _, c := range cases {
		b := c.edit(bytes.Clone(raw))
		if _, err := Check(b, n, d); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
		if ix2, err := Load(b, n, d); err == nil {
			ix2.Close()
			t.Errorf("%s: loaded", c.name)
		}
	}
}

// Whatever the bytes, Check does not panic, and an index it passes loads
// and answers searches without crashing.
func FuzzCheck(f *testing.F) {
	ix, _ := build(f, 60, 4)
	raw, err := ix.Bytes()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:100])
	q := unitRows(5, 3, 4)
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := Check(b, 60, 4); err != nil {
			return
		}
		ix, err := Load(b, 60, 4)
		if err != nil {
			return
		}
		defer ix.Close()
		if _, _, err := ix.Search(q, 5, 20); err != nil && !strings.Contains(err.Error(), "hnsw") {
			t.Fatal(err)
		}
	})
}
