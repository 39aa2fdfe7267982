package train

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/infomax/infomax/data"
)

// The batches of a run: a goroutine fills them a few steps ahead of the
// training step, from the decoded split in memory or from a stream. Both
// take epoch e's images in the order data.EpochPermutation(seed, e) gives
// (random access) or the stream's EpochOrder (sequential: shards through a
// shuffle buffer), cut into perEpoch batches; the last partial batch of an
// epoch is dropped. Batch k of epoch e depends on nothing else, so a resumed
// run sees the batches an uninterrupted one would.

// batcher assembles the batches of steps start+1..total in a goroutine, a
// few ahead of the training step, in buffers that the loop hands back.
type batcher struct {
	ready  chan []byte
	failed chan error
	free   chan []byte
	cancel context.CancelFunc
	waited time.Duration // time the loop spent blocked in next
	closed func()
}

const batchesAhead = 3

// filler writes the batch of a step into buf.
type filler interface {
	fill(step int64, buf []byte) error
	close()
}

func prefetch(ctx context.Context, f filler, batchBytes int, start, total int64) *batcher {
	ctx, cancel := context.WithCancel(ctx)
	b := &batcher{ready: make(chan []byte, batchesAhead), failed: make(chan error, 1), free: make(chan []byte, batchesAhead), cancel: cancel, closed: f.close}
	for i := 0; i < batchesAhead; i++ {
		b.free <- make([]byte, batchBytes)
	}
	go func() {
		for step := start; step < total; step++ {
			var buf []byte
			select {
			case buf = <-b.free:
			case <-ctx.Done():
				return
			}
			if err := f.fill(step, buf); err != nil {
				if ctx.Err() == nil {
					b.failed <- fmt.Errorf("the batch of step %d: %w", step+1, err)
				}
				return
			}
			select {
			case b.ready <- buf:
			case <-ctx.Done():
				return
			}
		}
	}()
	return b
}

// next returns the next batch, timing the wait.
func (b *batcher) next() ([]byte, error) {
	t := time.Now()
	defer func() { b.waited += time.Since(t) }()
	select {
	case buf := <-b.ready:
		return buf, nil
	case err := <-b.failed:
		return nil, err
	}
}

// done hands a batch's buffer back once the step has used it.
func (b *batcher) done(buf []byte) { b.free <- buf }

// stop ends the stream and returns the time the loop waited on it.
func (b *batcher) stop() time.Duration {
	b.cancel()
	b.closed()
	return b.waited
}

// memoryBatches fill batches from a split in memory.
type memoryBatches struct {
	s         *data.Set
	seed      int64
	batch     int
	perEpoch  int64
	perm      []int
	permEpoch int
}

func newMemoryBatches(s *data.Set, seed int64, batch int, perEpoch int64) *memoryBatches {
	return &memoryBatches{s: s, seed: seed, batch: batch, perEpoch: perEpoch, permEpoch: -1}
}

func (m *memoryBatches) fill(step int64, buf []byte) error {
	if epoch := int(step / m.perEpoch); epoch != m.permEpoch {
		m.perm, m.permEpoch = data.EpochPermutation(m.seed, epoch, m.s.Len()), epoch
	}
	pos := int(step%m.perEpoch) * m.batch
	per := m.s.ImageBytes()
	for i, idx := range m.perm[pos : pos+m.batch] {
		copy(buf[i*per:], m.s.Image(idx))
	}
	return nil
}

func (m *memoryBatches) close() {}

// streamBatches fill batches from a stream read ahead by a data.Reader.
type streamBatches struct {
	s     *data.Stream
	r     *data.Reader
	batch int
	ok    []bool
}

// streamWindow is how many decoded images a stream holds ahead: the shuffle
// buffer (sequential streams) and two batches, plus two per decoder.
func streamWindow(s *data.Stream, batch, buffer int) int {
	w := 2*batch + 2*runtime.GOMAXPROCS(0)
	if s.Sequential {
		w += min(buffer, s.Len())
	}
	return w
}

func newStreamBatches(ctx context.Context, s *data.Stream, seed int64, batch, buffer int, perEpoch, start, total int64) *streamBatches {
	plans := func(yield func(data.Plan) bool) {
		for e := start / perEpoch; e*perEpoch < total; e++ {
			ids, order := s.EpochOrder(seed, int(e), buffer)
			p := data.Plan{IDs: ids[:min(perEpoch, total-e*perEpoch)*int64(batch)], ShardOrder: order}
			if e == start/perEpoch {
				p.From = int(start%perEpoch) * batch
			}
			if !yield(p) {
				return
			}
		}
	}
	return &streamBatches{s: s, r: s.Read(ctx, plans, streamWindow(s, batch, buffer)), batch: batch, ok: make([]bool, batch)}
}

// fill reads the step's images. A bad image (skipped with --skip-bad) leaves
// its place to a copy of the batch's previous good image (the next one if
// it is the first), so every batch is whole and stays where it was.
func (sb *streamBatches) fill(step int64, buf []byte) error {
	per := sb.s.Shape.H * sb.s.Shape.W * sb.s.Shape.C
	good := -1
	for i := range sb.batch {
		_, ok, err := sb.r.Next(buf[i*per : (i+1)*per])
		if err != nil {
			return err
		}
		sb.ok[i] = ok
		if ok && good < 0 {
			good = i
		}
	}
	if good < 0 {
		return fmt.Errorf("every image of the batch is bad")
	}
	for i := range sb.batch {
		if !sb.ok[i] {
			copy(buf[i*per:(i+1)*per], buf[good*per:(good+1)*per])
		} else {
			good = i
		}
	}
	return nil
}

func (sb *streamBatches) close() { sb.r.Close() }
