package train

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/infomax/infomax/data"
)

// epochOrder is the data order of an epoch: a permutation that depends only on
// the seed and the epoch, so a resumed run sees the batches an uninterrupted
// one would.
func epochOrder(seed int64, epoch, n int) []int {
	return rand.New(rand.NewPCG(uint64(seed), uint64(epoch))).Perm(n)
}

// batcher assembles the batches of steps start+1..total in a goroutine, a
// few ahead of the training step, in buffers that the loop hands back.
type batcher struct {
	ready  chan []byte
	free   chan []byte
	cancel context.CancelFunc
	waited time.Duration // time the loop spent blocked in next
}

const batchesAhead = 3

func prefetch(ctx context.Context, s *data.Set, seed int64, batch int, perEpoch, start, total int64) *batcher {
	ctx, cancel := context.WithCancel(ctx)
	b := &batcher{ready: make(chan []byte, batchesAhead), free: make(chan []byte, batchesAhead), cancel: cancel}
	for i := 0; i < batchesAhead; i++ {
		b.free <- make([]byte, batch*s.ImageBytes())
	}
	go func() {
		var perm []int
		permEpoch := -1
		for step := start; step < total; step++ {
			var buf []byte
			select {
			case buf = <-b.free:
			case <-ctx.Done():
				return
			}
			if epoch := int(step / perEpoch); epoch != permEpoch {
				perm, permEpoch = epochOrder(seed, epoch, s.Len()), epoch
			}
			pos := int(step%perEpoch) * batch
			for i, idx := range perm[pos : pos+batch] {
				copy(buf[i*s.ImageBytes():], s.Image(idx))
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
func (b *batcher) next() []byte {
	t := time.Now()
	buf := <-b.ready
	b.waited += time.Since(t)
	return buf
}

// done hands a batch's buffer back once the step has used it.
func (b *batcher) done(buf []byte) { b.free <- buf }

// stop ends the stream and returns the time the loop waited on it.
func (b *batcher) stop() time.Duration {
	b.cancel()
	return b.waited
}
