// Package exporter runs the Python exporter (pyexport/) and its probe, trained and profile programs.
//
// Package exporter runs the Python exporter, pyexport/ (a Python package of
// its own): it writes a config's spec as canonical JSON and calls `python -m
// pyexport`, which builds the SavedModel and its manifest; and it runs the
// probe, trained-encoder and profile programs there.
package exporter

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/fsutil"
)

// PythonEnv names the variable that overrides the Python interpreter.
const PythonEnv = "INFOMAX_PYTHON"

// RootEnv names the variable that points at the project root.
const RootEnv = "INFOMAX_ROOT"

// Root finds the project root (the folder holding pyexport/__main__.py), for
// the Python exporter and the project's configs: $INFOMAX_ROOT; else the
// working directory or a folder above it; else the folder this package was
// compiled from (a binary built from a clone, run from anywhere on the
// machine that holds the clone).
func Root() (string, error) {
	if d := os.Getenv(RootEnv); d != "" {
		if !isRoot(d) {
			return "", fmt.Errorf("%s=%s: no pyexport/__main__.py there", RootEnv, d)
		}
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if isRoot(d) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	if _, src, _, ok := runtime.Caller(0); ok && filepath.IsAbs(src) {
		if d := filepath.Dir(filepath.Dir(src)); isRoot(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("no pyexport/__main__.py in %s or above, nor where this program was built from: run from the infomax project folder or set %s", dir, RootEnv)
}

func isRoot(d string) bool {
	_, err := os.Stat(filepath.Join(d, "pyexport", "__main__.py"))
	return err == nil
}

// Python returns the interpreter to run the exporter with: $INFOMAX_PYTHON,
// or the project's .venv made by `make setup`; outside the source tree (root
// ""), python3 on the PATH.
func Python(root string) (string, error) {
	if p := os.Getenv(PythonEnv); p != "" {
		return p, nil
	}
	if root == "" {
		p, err := exec.LookPath("python3")
		if err != nil {
			return "", fmt.Errorf("no Python to run the probe's program: set %s to a Python with TensorFlow (%w)", PythonEnv, err)
		}
		return p, nil
	}
	p := filepath.Join(root, ".venv", "bin", "python")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no Python environment at %s: run `make setup` (or set %s)", p, PythonEnv)
	}
	return p, nil
}

// Fresh reports whether dir holds a SavedModel exported from cfg's spec.
func Fresh(cfg *config.Config, dir string) (bool, error) {
	why, _, err := Stale(cfg, dir)
	return why == "", err
}

// Stale says why dir does not hold a SavedModel exported from cfg's spec
// ("" when it does), and whether what it holds is another spec's model.
func Stale(cfg *config.Config, dir string) (why string, otherSpec bool, err error) {
	man, err := graph.ReadManifest(dir)
	switch {
	case errors.Is(err, graph.ErrNoExport):
		return "there is none yet", false, nil
	case errors.Is(err, graph.ErrStale):
		return fmt.Sprintf("the one there is stale (%v)", err), false, nil
	case err != nil:
		return "", false, err
	}
	_, hash := cfg.SpecJSON()
	if man.ConfigHash != hash {
		return fmt.Sprintf("the one there was exported from another spec (%.12s, this config's is %.12s)", man.ConfigHash, hash), true, nil
	}
	return "", false, nil
}

// rootAndPython are the project's root and its Python.
func rootAndPython() (root, py string, err error) {
	if root, err = Root(); err != nil {
		return "", "", err
	}
	py, err = Python(root)
	return root, py, err
}

// Export (re)writes the SavedModel for cfg into dir. Output of the exporter
// goes to the given writers.
func Export(ctx context.Context, cfg *config.Config, dir string, stdout, stderr io.Writer) error {
	if cfg.Model.Precision == config.PrecisionAuto {
		return fmt.Errorf("export %s: model.precision is auto, which config.Load resolves for this CPU: resolve it first (Config.ResolvePrecision)", dir)
	}
	root, py, err := rootAndPython()
	if err != nil {
		return err
	}
	spec, _ := cfg.SpecJSON()
	f, err := os.CreateTemp("", "infomax-spec-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(spec); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, py, "-m", "pyexport", "--spec", f.Name(), "--out", abs)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("export %s: %s -m pyexport: %w", dir, py, err)
	}
	return nil
}

// ProbeFile is where a model export carries the probe's Python program
// (pyexport/probe.py and what it imports), so that a run folder alone can be
// evaluated: its model/ is a copy of the export.
const ProbeFile = "probe/probe.py"

// ProbeProgram is the probe's program to run for the SavedModel in
// modelDir: the copy its export carries (ProbeFile), or, for a model
// exported before exports carried it ("" too), the source tree's
// pyexport/probe.py.
func ProbeProgram(modelDir string) (string, error) {
	if modelDir != "" {
		p := filepath.Join(modelDir, filepath.FromSlash(ProbeFile))
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	root, err := Root()
	if err != nil {
		return "", fmt.Errorf("the probe's program: %s has no %s (an export from before they carried it) and %w", modelDir, ProbeFile, err)
	}
	return filepath.Join(root, "pyexport", "probe.py"), nil
}

// ProbeDir is where the probe for dim features and classes classes is
// exported (hidden > 0: the MLP probe with that many hidden units; 0: the
// linear probe), under cache: its name carries a hash of the probe's
// program and the settings, so a change to the probe's code makes a new
// export instead of silently reusing the old one.
func ProbeDir(cache, program string, dim, classes, hidden int) (string, error) {
	src, err := os.ReadFile(program)
	if err != nil {
		return "", fmt.Errorf("the probe's program: %w", err)
	}
	name := "probe"
	settings := fmt.Sprintf("\n%d %d", dim, classes)
	if hidden > 0 {
		name = fmt.Sprintf("probe-mlp%d", hidden)
		settings += fmt.Sprintf(" %d", hidden)
	}
	sum := sha256.Sum256(append(src, settings...))
	return filepath.Join(cache, fmt.Sprintf("%s-%dx%d-%x", name, dim, classes, sum[:6])), nil
}

// probeCache is the folder the probes' exports are kept in: the project's
// exports/ folder when the program runs inside the source tree (root), else
// the user's cache folder (infomax/probes).
func probeCache(root string) (string, error) {
	if root != "" {
		return filepath.Join(root, "exports"), nil
	}
	dir, err := fsutil.UserCache("probes")
	if err != nil {
		return "", fmt.Errorf("a folder for the probes' exports: %w", err)
	}
	return dir, nil
}

// ExportProbe writes the probe's SavedModel for dim features, classes
// classes and hidden hidden units (0: the linear probe) with program (see
// ProbeProgram), unless it is already there; it returns its folder.
func ExportProbe(ctx context.Context, program string, dim, classes, hidden int, stderr io.Writer) (string, error) {
	root, _ := Root() // "": outside the source tree
	cache, err := probeCache(root)
	if err != nil {
		return "", err
	}
	dir, err := ProbeDir(cache, program, dim, classes, hidden)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "probe.json")); err == nil {
		return dir, nil
	}
	py, err := Python(root)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, py, program, "--dim", fmt.Sprint(dim), "--classes", fmt.Sprint(classes), "--hidden", fmt.Sprint(hidden), "--out", dir)
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=2")
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("export the probe %s with %s %s: %w", dir, py, program, err)
	}
	return dir, nil
}

// ExportTrained writes a run's trained encoder on its own into out
// (pyexport/trained.py): format "savedmodel" (the checkpoint's weights, the
// serving_default and encode signatures, a manifest of kind encoder) or
// "onnx" (out/encoder.onnx and the manifest). modelDir is the run's
// SavedModel, prefix the checkpoint's full prefix, step its step.
func ExportTrained(ctx context.Context, modelDir, prefix string, step int64, out, format string, stdout, stderr io.Writer) error {
	root, py, err := rootAndPython()
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if err := replaceable(out); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, py, "-m", "pyexport.trained", "--model", modelDir, "--checkpoint", prefix,
		"--step", fmt.Sprint(step), "--format", format, "--out", abs)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=2")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("export the trained encoder to %s: %s -m pyexport.trained: %w", out, py, err)
	}
	return nil
}

// replaceable refuses an output folder that holds anything but an earlier
// trained-encoder export (or nothing): ExportTrained replaces it whole.
func replaceable(out string) error {
	entries, err := os.ReadDir(out)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("export --out %s: %w", out, err)
	}
	raw, err := os.ReadFile(filepath.Join(out, graph.ManifestFile))
	var man struct {
		Kind string `json:"kind"`
	}
	if err != nil || json.Unmarshal(raw, &man) != nil || man.Kind != graph.KindEncoder {
		return fmt.Errorf("export --out %s: the folder exists and is not a trained encoder's export (no %s of kind %q): "+
			"it would be replaced whole, so give a new or empty folder", out, graph.ManifestFile, graph.KindEncoder)
	}
	return nil
}

// Profile runs the exported train_step of dir for steps traced steps of
// batch images (after a warm-up) with the given thread pools and prints
// where the time goes, by kind of op and by node, with the CPU named
// (pyexport/profile.py).
func Profile(ctx context.Context, dir string, batch, steps, intra, inter int, stdout, stderr io.Writer) error {
	root, py, err := rootAndPython()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, py, "-m", "pyexport.profile", "--export", dir, "--batch", fmt.Sprint(batch),
		"--steps", fmt.Sprint(steps), "--warmup", fmt.Sprint(max(10, steps/2)), "--intra", fmt.Sprint(intra), "--inter", fmt.Sprint(inter))
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = append(os.Environ(), "PYTHONWARNINGS=ignore")
	if _, ok := os.LookupEnv("TF_CPP_MIN_LOG_LEVEL"); !ok {
		cmd.Env = append(cmd.Env, "TF_CPP_MIN_LOG_LEVEL=3") // TensorFlow's start-up lines: the runner's own are off too
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("profile %s: %w", dir, err)
	}
	return nil
}
