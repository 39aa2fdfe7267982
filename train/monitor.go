package train

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/infomax/infomax/eval"
)

// The kNN monitor (eval.every_epochs): at every that many epochs' end the
// run encodes the kNN bank and the test split with the weights of that step
// and logs the weighted kNN accuracy and what it cost; training then goes
// on. The encoder runs in inference mode, so the training itself (losses,
// weights, batches) is the same with the monitor on or off.

// monitorDue says whether the monitor runs after step: at the end of every
// eval.every_epochs-th epoch, except the run's last step when the final
// evaluation follows (its weighted kNN ends the curve).
func (r *run) monitorDue(step, perEpoch, total int64) bool {
	n := int64(r.cfg.Eval.EveryEpochs)
	if n <= 0 || step == 0 || step%perEpoch != 0 || (step/perEpoch)%n != 0 {
		return false
	}
	return step != total || !r.cfg.Eval.AfterTraining
}

// labelledCounts are the numbers of labelled training and test images.
func (r *run) labelledCounts() (train, test int) {
	if r.streams != nil {
		return len(labelledIDs(r.streams.Train.Labels)), len(labelledIDs(r.streams.Test.Labels))
	}
	return len(labelledIDs(r.splits.Train.Labels)), len(labelledIDs(r.splits.Test.Labels))
}

// monitor measures one point of the curve with the model's current weights.
func (r *run) monitor(ctx context.Context, step, perEpoch int64) (eval.CurvePoint, error) {
	t0 := time.Now()
	train, test, classes, ok, err := r.labelled(ctx, io.Discard)
	if err != nil {
		return eval.CurvePoint{}, err
	}
	if !ok {
		return eval.CurvePoint{}, fmt.Errorf("eval.every_epochs = %d: the kNN monitor needs labelled training and test images; set eval.every_epochs: 0 for this data set", r.cfg.Eval.EveryEpochs)
	}
	e := r.cfg.Eval
	knn, err := eval.KNN(train.Features, train.Labels, test.Features, test.Labels, len(classes), eval.KNNSettings{
		K: e.K, WeightedK: e.WeightedK, Temperature: e.Temperature, Chunk: eval.ChunkFor(len(train.Labels)),
	})
	if err != nil {
		return eval.CurvePoint{}, fmt.Errorf("kNN monitor at step %d: %w", step, err)
	}
	return eval.CurvePoint{Step: step, Epoch: float64(step) / float64(perEpoch), Weighted: knn.Weighted,
		Seconds: time.Since(t0).Seconds()}, nil
}

// logPoint records a monitor point in metrics.jsonl, TensorBoard (the same
// tag as the final evaluation's, so that they make one curve) and the log.
func (l *stepLog) logPoint(p eval.CurvePoint) error {
	if err := l.metrics.writeRecord(map[string]any{"step": p.Step, "epoch": p.Epoch, "knn_weighted": p.Weighted, "knn_seconds": p.Seconds}); err != nil {
		return fmt.Errorf("metrics.jsonl: %w", err)
	}
	if err := l.r.tb.Scalars(p.Step, map[string]float64{"knn/weighted": p.Weighted, "knn/monitor_seconds": p.Seconds}); err != nil {
		return fmt.Errorf("TensorBoard events: %w", err)
	}
	if err := l.r.tb.Flush(); err != nil {
		return fmt.Errorf("TensorBoard events: %w", err)
	}
	line := fmt.Sprintf("kNN monitor: step %d  epoch %.0f  weighted kNN %.4f  (%.1f s)", p.Step, p.Epoch, p.Weighted, p.Seconds)
	l.prog.log(line, line)
	return nil
}

// readCurve returns the monitor's points in DIR/metrics.jsonl up to step, in
// step order (a resumed run may have measured a step twice: the last wins).
func readCurve(dir string, upTo int64) ([]eval.CurvePoint, error) {
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	byStep := map[int64]eval.CurvePoint{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var p struct {
			eval.CurvePoint
			Has *float64 `json:"knn_weighted"`
		}
		if json.Unmarshal(sc.Bytes(), &p) != nil || p.Has == nil || p.Step > upTo {
			continue
		}
		p.Weighted = *p.Has
		byStep[p.Step] = p.CurvePoint
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "metrics.jsonl"), err)
	}
	curve := slices.Collect(maps.Values(byStep))
	slices.SortFunc(curve, func(a, b eval.CurvePoint) int { return cmp.Compare(a.Step, b.Step) })
	return curve, nil
}

// plotCurve draws DIR/knn_curve.png: weighted kNN accuracy against the epoch.
func plotCurve(dir string, curve []eval.CurvePoint) (string, error) {
	if len(curve) < 2 {
		return "", nil
	}
	pts := make(plotter.XYs, len(curve))
	for i, c := range curve {
		pts[i] = plotter.XY{X: c.Epoch, Y: c.Weighted}
	}
	p := plot.New()
	p.Title.Text = "weighted kNN accuracy during training"
	p.X.Label.Text = "epoch"
	p.Y.Label.Text = "top-1 accuracy"
	p.X.Tick.Marker = plainTicks{}
	if err := plotutil.AddLinePoints(p, "", pts); err != nil {
		return "", fmt.Errorf("kNN curve: %w", err)
	}
	img := vgimg.New(7*vg.Inch, 4*vg.Inch)
	p.Draw(draw.New(img))
	path := filepath.Join(dir, "knn_curve.png")
	return path, savePNG(path, img)
}
