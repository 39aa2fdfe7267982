package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/infomax/infomax/eval"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/fsutil"
)

// progress shows training progress: a bar (step/total, losses, ETA) on a
// terminal, plain lines at each log step otherwise (CI, log files).
type progress struct {
	out io.Writer
	bar *progressbar.ProgressBar
}

func newProgress(out io.Writer, total, start int64) *progress {
	p := &progress{out: out}
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(out), progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30), progressbar.OptionThrottle(200_000_000), progressbar.OptionShowElapsedTimeOnFinish())
		p.bar.Set64(start)
	}
	return p
}

func (p *progress) step(step int64) {
	if p.bar != nil {
		p.bar.Set64(step)
	}
}

// log prints line when not on a terminal, and shows short on the bar when on one.
func (p *progress) log(line, short string) {
	if p.bar == nil {
		fmt.Fprintln(p.out, line)
		return
	}
	p.bar.Describe(short)
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Exit()
		fmt.Fprintln(p.out)
		p.bar = nil
	}
}

// logScalars sends a log step's figures to TensorBoard.
func (r *run) logScalars(step int64, l graph.Losses, ips, wait float64) error {
	v := map[string]float64{"loss/total": l.Loss, "images_per_sec": ips, "learning_rate": l.LearningRate, "data_wait": wait}
	for k, x := range l.Terms {
		v["loss/"+k] = x
	}
	if err := r.tb.Scalars(step, v); err != nil {
		return err
	}
	return r.tb.Flush()
}

// logReport sends an evaluation's accuracies and retrieval grids to TensorBoard.
func (r *run) logReport(rep *eval.Report) error {
	k := rep.Model.KNN
	v := map[string]float64{"knn/weighted": k.Weighted, "knn/majority": k.Majority, "knn/nn1_cosine": k.Top1NN, "knn/nn1_l2": k.L2NN1}
	if rep.Model.Probe != nil {
		v["linear_probe"] = rep.Model.Probe.Accuracy
	}
	if err := r.tb.Scalars(rep.Step, v); err != nil {
		return fmt.Errorf("TensorBoard events in %s: %w", r.dir, err)
	}
	for _, g := range rep.Files.Grids {
		raw, err := os.ReadFile(g)
		if err != nil {
			return err
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("retrieval grid %s: %w", g, err)
		}
		tag := "retrieval/" + filepath.Base(g)
		if err := r.tb.Image(rep.Step, tag, raw, cfg.Width, cfg.Height, 4); err != nil {
			return fmt.Errorf("TensorBoard events in %s: %w", r.dir, err)
		}
	}
	return r.tb.Flush()
}

// plotLosses draws DIR/loss.png from metrics.jsonl: each loss term against the step.
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

func plotLosses(dir string, terms []string) error {
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
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
