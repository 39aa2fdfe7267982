package train

import (
	"bytes"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"

	"github.com/infomax/infomax/eval"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/infomax/infomax/graph"
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
func (r *trainer) logScalars(step int64, l graph.Losses, ips, wait float64) error {
	v := map[string]float64{"loss/total": l.Loss, "images_per_sec": ips, "learning_rate": l.LearningRate, "data_wait": wait}
	for k, x := range l.Terms {
		v["loss/"+k] = x
	}
	if err := r.log.Events.Scalars(step, v); err != nil {
		return err
	}
	return r.log.Events.Flush()
}

// logReport sends an evaluation's accuracies and retrieval grids to TensorBoard.
func (r *trainer) logReport(rep *eval.Report) error {
	k := rep.Model.KNN
	v := map[string]float64{"knn/weighted": k.Weighted, "knn/majority": k.Majority, "knn/nn1_cosine": k.Top1NN, "knn/nn1_l2": k.L2NN1}
	if rep.Model.Probe != nil {
		v["linear_probe"] = rep.Model.Probe.Accuracy
	}
	if err := r.log.Events.Scalars(rep.Step, v); err != nil {
		return fmt.Errorf("TensorBoard events in %s: %w", r.run.Dir, err)
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
		if err := r.log.Events.Image(rep.Step, tag, raw, cfg.Width, cfg.Height, 4); err != nil {
			return fmt.Errorf("TensorBoard events in %s: %w", r.run.Dir, err)
		}
	}
	return r.log.Events.Flush()
}
