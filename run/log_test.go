package run

import (
	"os"
	"path/filepath"
	"testing"
)

// The curve read back from metrics.jsonl: monitor lines only (loss lines
// and a half-written last line are not points), up to the step asked, in
// step order, the later of two measurements of one step winning (a run
// rolled back or resumed measures a step again).
func TestCurve(t *testing.T) {
	dir := t.TempDir()
	lines := `{"step":10,"epoch":1,"loss":0.5}
{"step":40,"epoch":4,"knn_weighted":0.4,"knn_seconds":2}
{"step":20,"epoch":2,"knn_weighted":0.2,"knn_seconds":1}
{"step":20,"epoch":2,"knn_weighted":0.25,"knn_seconds":1.5}
{"step":30,"epoch":3,"knn_weighted":0,"knn_seconds":1}
{"step":60,"epoch":6,"knn_weighted":0.6,"knn_seconds":1}
{"step":50,"epoch":5,"knn_wei`
	if err := os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := (&Run{Dir: dir}).Curve(50)
	if err != nil {
		t.Fatal(err)
	}
	want := []CurvePoint{{Step: 20, Epoch: 2, Weighted: 0.25, Seconds: 1.5}, {Step: 30, Epoch: 3, Weighted: 0, Seconds: 1}, {Step: 40, Epoch: 4, Weighted: 0.4, Seconds: 2}}
	if len(got) != len(want) {
		t.Fatalf("curve %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("point %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if c, err := (&Run{Dir: t.TempDir()}).Curve(100); err != nil || len(c) != 0 {
		t.Errorf("no metrics.jsonl: %v, %v; want an empty curve", c, err)
	}
}
