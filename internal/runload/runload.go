// Package runload opens runs: Model loads the SavedModel a resolved config
// names, with the session the config asks for (spec hash checked, thread
// pools, device), for `runner train`; Open opens a finished (or interrupted)
// run folder: its config.yaml, that model, and the latest complete checkpoint
// restored into it, for `runner eval`, `index`, `search` and package encoder.
// Every TensorFlow session of a run is made here.
package runload

import (
	"fmt"
	"path/filepath"

	"github.com/infomax/infomax/checkpoint"
	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/graph"
)

// Run is an opened run folder; Model.Close releases its TensorFlow session.
type Run struct {
	Dir         string
	Config      *config.Resolved
	Hash        string // the spec hash of Config, which the checkpoint and the SavedModel carry too
	Checkpoints checkpoint.Dir
	State       *checkpoint.State // the restored checkpoint
	Model       *graph.Model
}

// Open loads dir/config.yaml, checks that the latest checkpoint was trained
// from that spec, loads the SavedModel (which checks its manifest against the
// spec) and restores the checkpoint.
func Open(dir string) (*Run, error) {
	cfg, err := config.Load(filepath.Join(dir, "config.yaml"), nil)
	if err != nil {
		return nil, err
	}
	_, hash := cfg.SpecJSON()
	r := &Run{Dir: dir, Config: cfg, Hash: hash,
		Checkpoints: checkpoint.Dir{Path: filepath.Join(dir, "checkpoints"), Keep: cfg.Train.KeepCheckpoints}}
	if r.State, err = r.Checkpoints.Latest(); err != nil {
		return nil, err
	}
	if r.State.ConfigHash != hash {
		return nil, fmt.Errorf("%s: the checkpoint was trained from spec %.12s, the run's config.yaml says %.12s (was config.yaml edited?)",
			dir, r.State.ConfigHash, hash)
	}
	r.Model, err = Model(cfg)
	if err != nil {
		return nil, err
	}
	if err := r.Model.Restore(r.Checkpoints.PrefixPath(r.State.Prefix)); err != nil {
		r.Model.Close()
		return nil, err
	}
	return r, nil
}

// Model loads the SavedModel cfg names (cfg.ExportDir), checking its manifest
// against cfg's spec, in a session with cfg's thread pools on cfg's device.
func Model(cfg *config.Resolved) (*graph.Model, error) {
	_, hash := cfg.SpecJSON()
	return graph.Load(cfg.ExportDir, graph.Options{
		ConfigHash:     hash,
		IntraOpThreads: cfg.Train.IntraOpThreads,
		InterOpThreads: cfg.Train.InterOpThreads,
		Device:         cfg.Device,
	})
}
