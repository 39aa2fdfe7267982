// Package checkpoint keeps a run's TensorFlow checkpoints and its latest.json pointer.
//
// Package checkpoint keeps a run's TensorFlow checkpoints and the small
// pointer file that says which one is the latest.
//
// A checkpoint is written by the graph's own saver under a new prefix
// (ckpt-000500.index, ckpt-000500.data-*); its files are synced, and only then
// does latest.json, replaced by an atomic rename, name it. A crash at any
// moment leaves latest.json naming a complete checkpoint (or none). Files of
// checkpoints that no longer count, including half-written ones, are removed
// at the next save, and by Clean when a run opens for training: the remains
// of a save that failed (TensorFlow's saver writes into PREFIX_temp/ first,
// and a full disk leaves that folder behind) never block the next start.
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/infomax/infomax/internal/fsutil"
)

// LatestFile is the pointer file's name in the checkpoint folder.
const LatestFile = "latest.json"

// State is what latest.json records: enough to resume without outside knowledge.
type State struct {
	Prefix     string   `json:"prefix"` // file prefix inside the folder, e.g. ckpt-000500
	Step       int64    `json:"step"`
	Epoch      int      `json:"epoch"`       // epoch of the next step
	EpochStep  int      `json:"epoch_step"`  // position of the next step inside that epoch
	ConfigHash string   `json:"config_hash"` // the spec the weights belong to
	Time       string   `json:"time"`
	Kept       []string `json:"kept"` // prefixes still on disk, oldest first
	// LRScale multiplies a scheduled learning rate (train.lr_schedule:
	// cosine) after rollbacks; absent: 1.
	LRScale float64 `json:"lr_scale,omitempty"`
}

// Saver is what can write its variables under a prefix (graph.Model).
type Saver interface {
	Save(prefix string) error
}

// Dir manages the checkpoint folder of a run.
type Dir struct {
	Path string
	Keep int // how many recent checkpoints to keep (the final one is always the latest)
}

// ErrNone means the folder holds no checkpoint.
var ErrNone = errors.New("no checkpoint")

// Latest reads latest.json.
func (d Dir) Latest() (*State, error) {
	path := filepath.Join(d.Path, LatestFile)
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", d.Path, ErrNone)
	}
	if err != nil {
		return nil, err
	}
	// A few hundred bytes when this package wrote it.
	if fi.Size() > maxLatestBytes {
		return nil, fmt.Errorf("%s: %d bytes, not a pointer this package wrote (at most %d): corrupt", path, fi.Size(), maxLatestBytes)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Prefix == "" || s.Prefix != filepath.Base(s.Prefix) || s.Prefix == ".." {
		return nil, fmt.Errorf("%s: names no checkpoint of this folder (prefix %q)", path, s.Prefix)
	}
	if _, err := os.Stat(d.PrefixPath(s.Prefix) + ".index"); err != nil {
		return nil, fmt.Errorf("%s names %s, which is missing: %w", path, s.Prefix, err)
	}
	return &s, nil
}

const maxLatestBytes = 1 << 20

// Prefix is the name of step's checkpoint files (ckpt-000500.index, …): the
// one place the name is made.
func Prefix(step int64) string { return fmt.Sprintf("ckpt-%06d", step) }

// ParsePrefix is the step of a checkpoint prefix made by Prefix.
func ParsePrefix(prefix string) (int64, error) {
	var step int64
	if n, err := fmt.Sscanf(prefix, "ckpt-%d", &step); err != nil || n != 1 || Prefix(step) != prefix {
		return 0, fmt.Errorf("%q is not a checkpoint prefix (ckpt-NNNNNN)", prefix)
	}
	return step, nil
}

// PrefixPath is the full path of a checkpoint prefix.
func (d Dir) PrefixPath(prefix string) string { return filepath.Join(d.Path, prefix) }

// Save writes a checkpoint for state.Step through s, then points latest.json
// at it and prunes old checkpoints. state.Prefix, Time and Kept are filled in.
func (d Dir) Save(s Saver, state State) (*State, error) {
	if err := os.MkdirAll(d.Path, 0o755); err != nil {
		return nil, err
	}
	prev, err := d.Latest()
	if err != nil && !errors.Is(err, ErrNone) {
		return nil, err
	}
	state.Prefix = Prefix(state.Step)
	if err := s.Save(d.PrefixPath(state.Prefix)); err != nil {
		// Whatever the failed save wrote (a full disk leaves a half-written
		// PREFIX_temp/ folder) goes at once, unless latest.json names it.
		if prev == nil || prev.Prefix != state.Prefix {
			d.removePrefix(state.Prefix)
		}
		return nil, err
	}
	files, err := filepath.Glob(d.PrefixPath(state.Prefix) + ".*")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := fsutil.SyncFile(f); err != nil {
			return nil, fmt.Errorf("sync %s: %w", f, err)
		}
	}
	if err := fsutil.SyncDir(d.Path); err != nil {
		return nil, err
	}
	if prev != nil {
		state.Kept = slices.DeleteFunc(slices.Clone(prev.Kept), func(p string) bool { return p == state.Prefix })
	}
	state.Kept = append(state.Kept, state.Prefix)
	if len(state.Kept) > d.Keep {
		state.Kept = state.Kept[len(state.Kept)-d.Keep:]
	}
	state.Time = time.Now().UTC().Format(time.RFC3339)
	raw, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(d.Path, LatestFile), append(raw, '\n')); err != nil {
		return nil, fmt.Errorf("write %s: %w", LatestFile, err)
	}
	return &state, d.prune(state.Kept)
}

// Clean removes every checkpoint file that latest.json does not keep: the
// remains of saves that failed or were killed, which could otherwise fill
// the disk that the next save needs. Runs that open to train call it first;
// readers never do (a reader may be looking at a read-only copy).
func (d Dir) Clean() error {
	st, err := d.Latest()
	switch {
	case errors.Is(err, ErrNone):
		if _, err := os.Stat(d.Path); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return d.prune(nil)
	case err != nil:
		return err
	}
	return d.prune(st.Kept)
}

// removePrefix removes the files and folders of one prefix (best effort: a
// failure here leaves them to Clean).
func (d Dir) removePrefix(prefix string) {
	entries, _ := os.ReadDir(d.Path)
	for _, e := range entries {
		if PrefixOf(e.Name()) == prefix {
			os.RemoveAll(filepath.Join(d.Path, e.Name()))
		}
	}
}

// PrefixOf is the checkpoint prefix a file of the folder belongs to
// (ckpt-000500.index, ckpt-000500.data-00000-of-00001 and the saver's
// ckpt-000500_temp/ belong to ckpt-000500), or "" for other files.
func PrefixOf(name string) string {
	if !strings.HasPrefix(name, "ckpt-") {
		return ""
	}
	prefix, _, _ := strings.Cut(name, ".")
	prefix = strings.TrimSuffix(prefix, "_temp")
	return prefix
}

// prune removes checkpoint files whose prefix is not kept (old ones and
// leftovers of saves that never completed).
func (d Dir) prune(kept []string) error {
	entries, err := os.ReadDir(d.Path)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		prefix := PrefixOf(name)
		if prefix == "" || (slices.Contains(kept, prefix) && !strings.Contains(name, "_temp")) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(d.Path, name)); err != nil {
			return err
		}
	}
	return nil
}
