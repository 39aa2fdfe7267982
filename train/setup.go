package train

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/exporter"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/store"
	"github.com/infomax/infomax/run"
)

// setUp prepares the run folder (package run), exports the SavedModel if
// the folder has none of its spec, loads it and the data, and restores the
// latest checkpoint; it returns the step to start from.
func setUp(ctx context.Context, cfg *config.Resolved, o Options, out io.Writer) (*trainer, int64, error) {
	dir := o.RunDir
	if dir == "" {
		dir = filepath.Join("runs", cfg.Name)
	}
	shown := dir
	// A run folder in a bucket trains through a local work folder, which
	// it uploads to the bucket as it goes (package run's Remote).
	var remote *run.Remote
	if store.IsURL(dir) {
		var err error
		if remote, err = run.OpenRemote(ctx, dir, o.Resume, out); err != nil {
			return nil, 0, err
		}
		fmt.Fprintf(out, "train: the run folder is %s; working in %s (a cache: uploaded as the run goes)\n", remote.URL, remote.Local)
		dir, shown = remote.Local, remote.URL
	}
	// The run folder first: it is cheap to check, and a run killed during
	// start-up then still holds the config it was started with.
	r, err := run.Create(dir, cfg, o.Resume, out)
	if err != nil {
		return nil, 0, err
	}
	if !r.HasModel() {
		export, why, err := exportDirFor(&cfg.Config, out)
		if err != nil {
			return nil, 0, fmt.Errorf("the SavedModel of %s: %w", cfg.File, err)
		}
		if why != "" {
			fmt.Fprintf(out, "train: exporting the SavedModel for %s to %s: %s\n", cfg.File, export, why)
			if err := exporter.Export(ctx, &cfg.Config, export, out, out); err != nil {
				return nil, 0, fmt.Errorf("%w (export alone: %s export --config %s)", err, o.command(), shellQuote(cfg.File))
			}
		}
		if err := r.InstallModel(export); err != nil {
			return nil, 0, err
		}
	}
	t := &trainer{run: r, cfg: cfg, out: out, command: o.command(), lrScale: 1, shown: shown}
	if t.model, err = r.LoadModel(r.Session()); err != nil {
		return nil, 0, err
	}
	fail := func(err error) (*trainer, int64, error) {
		t.model.Close()
		return nil, 0, err
	}
	fmt.Fprintln(out, devicesLine(t.model, cfg.Device))
	fmt.Fprintf(out, "precision: %s\n", r.Precision)
	if t.data, err = r.LoadData(ctx, t.model.Manifest, out); err != nil {
		return fail(err)
	}
	if tr, te := t.data.Labelled(); cfg.Eval.EveryEpochs > 0 && (len(tr) == 0 || len(te) == 0) {
		return fail(fmt.Errorf("eval.every_epochs = %d: the kNN monitor needs labelled training and test images, and %s has %d and %d: set eval.every_epochs: 0 (or --eval.every_epochs 0)",
			cfg.Eval.EveryEpochs, cfg.Data.Path, len(tr), len(te)))
	}
	if remote != nil {
		t.remote = remote
		if err := remote.Start(); err != nil {
			return fail(err)
		}
	}
	state := r.State
	if state == nil {
		return t, 0, nil
	}
	if state.LRScale > 0 {
		t.lrScale = state.LRScale
	}
	fmt.Fprintf(out, "train: resumed %s from %s (step %d, epoch %d, position %d)\n", shown, state.Prefix, state.Step, state.Epoch, state.EpochStep)
	return t, state.Step, nil
}

// exportDirFor picks the folder of the SavedModel for cfg's spec, and says
// why it must be exported ("" when it is there already). Exports are never
// overwritten under another run: when cfg.ExportDir holds the SavedModel of
// another spec (a flag such as --loss.alpha 0 changed the spec), this
// spec's goes beside it, to EXPORT_DIR-<spec hash, 12 digits>.
func exportDirFor(cfg *config.Config, out io.Writer) (dir, why string, err error) {
	why, other, err := exporter.Stale(cfg, cfg.ExportDir)
	if err != nil || !other {
		return cfg.ExportDir, why, err
	}
	_, hash := cfg.SpecJSON()
	alt := strings.TrimRight(cfg.ExportDir, "/") + "-" + hash[:12]
	fmt.Fprintf(out, "train: %s holds the SavedModel of another spec; this config's is %s\n", cfg.ExportDir, alt)
	why, _, err = exporter.Stale(cfg, alt)
	return alt, why, err
}

// devicesLine says which devices TensorFlow sees and which one runs.
func devicesLine(m *graph.Model, device string) string {
	var devs []string
	for _, d := range m.Devices {
		devs = append(devs, d.Type+" "+d.Name)
	}
	line := fmt.Sprintf("devices: %s; device %s: running on %s", strings.Join(devs, ", "), device, m.Using)
	if (device == "auto" || device == "") && m.Using != "GPU" {
		line += " (TensorFlow sees no GPU: this build is CPU-only or no GPU is visible; see docs/reference.md, \"Devices\")"
	}
	return line
}
