package run

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/infomax/infomax/internal/fsutil"
	"github.com/infomax/infomax/tboard"
)

// CurvePoint is one point of the kNN curve: the weighted kNN accuracy of
// the test split against the training split at a step (the kNN monitor's, or
// an evaluation's).
type CurvePoint struct {
	Step     int64   `json:"step"`
	Epoch    float64 `json:"epoch"`
	Weighted float64 `json:"knn_weighted"`
	Seconds  float64 `json:"knn_seconds"` // what measuring it took (encoding and search)
}

// Log is where a run records what happens to it: metrics.jsonl (one JSON
// object a line) and TensorBoard's event file, written together.
type Log struct {
	f      *os.File
	w      *bufio.Writer
	Events *tboard.Writer
}

// OpenLog opens the run's metrics.jsonl for appending, first dropping the
// lines logged after step start (by a run that went on past the checkpoint a
// resume starts from; math.MaxInt64 keeps every line), and a new TensorBoard
// event file.
func (r *Run) OpenLog(start int64) (*Log, error) {
	path := filepath.Join(r.Dir, MetricsFile)
	if raw, err := os.ReadFile(path); err == nil && start != math.MaxInt64 {
		var keep []byte
		for _, line := range strings.SplitAfter(string(raw), "\n") {
			var rec struct {
				Step int64 `json:"step"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Step <= start && strings.HasSuffix(line, "\n") {
				keep = append(keep, line...)
			}
		}
		if err := fsutil.WriteFileAtomic(path, keep); err != nil {
			return nil, r.readOnly(err)
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, r.readOnly(err)
	}
	events, err := tboard.NewWriter(r.Dir)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("TensorBoard events: %w", r.readOnly(err))
	}
	return &Log{f: f, w: bufio.NewWriter(f), Events: events}, nil
}

// readOnly explains a write refused in a read-only run folder.
func (r *Run) readOnly(err error) error {
	if os.IsPermission(err) || errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("%w: this writes into the run folder %s, which is read-only here (what only reads a run works on a read-only copy; training on and `runner eval --curve` need a writable one)", err, r.Dir)
	}
	return err
}

// Record appends one line to metrics.jsonl.
func (l *Log) Record(rec map[string]any) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	l.w.Write(append(line, '\n'))
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("metrics.jsonl: %w", err)
	}
	return nil
}

// Point records a kNN curve point in metrics.jsonl and TensorBoard (the tag
// of the final evaluation's figure, so that they make one curve).
func (l *Log) Point(p CurvePoint) error {
	if err := l.Record(map[string]any{"step": p.Step, "epoch": p.Epoch, "knn_weighted": p.Weighted, "knn_seconds": p.Seconds}); err != nil {
		return err
	}
	if err := l.Events.Scalars(p.Step, map[string]float64{"knn/weighted": p.Weighted, "knn/monitor_seconds": p.Seconds}); err != nil {
		return fmt.Errorf("TensorBoard events: %w", err)
	}
	if err := l.Events.Flush(); err != nil {
		return fmt.Errorf("TensorBoard events: %w", err)
	}
	return nil
}

// Close closes both files.
func (l *Log) Close() error {
	return cmp.Or(l.Events.Close(), l.f.Close())
}

// Curve returns the kNN curve points in the run's metrics.jsonl up to step
// upTo, in step order (a resumed run may have measured a step twice: the
// last wins).
func (r *Run) Curve(upTo int64) ([]CurvePoint, error) {
	path := filepath.Join(r.Dir, MetricsFile)
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	byStep := map[int64]CurvePoint{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var p struct {
			CurvePoint
			Has *float64 `json:"knn_weighted"`
		}
		if json.Unmarshal(sc.Bytes(), &p) != nil || p.Has == nil || p.Step > upTo {
			continue
		}
		p.Weighted = *p.Has
		byStep[p.Step] = p.CurvePoint
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	curve := slices.Collect(maps.Values(byStep))
	slices.SortFunc(curve, func(a, b CurvePoint) int { return cmp.Compare(a.Step, b.Step) })
	return curve, nil
}
