package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/infomax/infomax/internal/fsutil"
	"github.com/infomax/infomax/run"
)

// plainTicks are gonum's default ticks labelled without trailing zeros.
type plainTicks struct{}

func (plainTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', -1, 64)
		}
	}
	return ts
}

// PlotLosses draws DIR/loss.png from DIR/metrics.jsonl: each loss term
// against the step.
func PlotLosses(dir string, terms []string) error {
	f, err := os.Open(filepath.Join(dir, run.MetricsFile))
	if err != nil {
		return err
	}
	defer f.Close()
	series := map[string]plotter.XYs{}
	names := append([]string{"loss"}, terms...)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec map[string]float64
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		if _, ok := rec["loss"]; !ok {
			continue // a kNN monitor line
		}
		for _, n := range names {
			series[n] = append(series[n], plotter.XY{X: rec["step"], Y: rec[n]})
		}
	}
	p := plot.New()
	p.Title.Text = "training losses"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss"
	p.X.Tick.Marker = plainTicks{} // steps are whole numbers: "250", not "250.00"
	var args []any
	for _, n := range names {
		args = append(args, n, series[n])
	}
	if err := plotutil.AddLines(p, args...); err != nil {
		return fmt.Errorf("loss plot: %w", err)
	}
	// The legend goes in a margin of its own, right of the axes, so that it
	// never covers the curves' ends.
	legend := p.Legend
	p.Legend = plot.NewLegend()
	const width, height, margin = 9 * vg.Inch, 4 * vg.Inch, 1.2 * vg.Inch
	img := vgimg.New(width, height)
	dc := draw.New(img)
	p.Draw(draw.Crop(dc, 0, -margin, 0, 0))
	legend.Top, legend.Left = true, true
	legend.Draw(draw.Crop(dc, width-margin+0.1*vg.Inch, 0, 0, -0.3*vg.Inch))
	return savePNG(filepath.Join(dir, "loss.png"), img)
}

// savePNG renders a drawn canvas as PNG and writes it atomically to path.
func savePNG(path string, img *vgimg.Canvas) error {
	var b bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&b); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return fsutil.WriteFileAtomic(path, b.Bytes())
}

// PlotCurve draws DIR/knn_curve.png: weighted kNN accuracy against the
// epoch ("" and nothing drawn for fewer than two points).
func PlotCurve(dir string, curve []run.CurvePoint) (string, error) {
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
