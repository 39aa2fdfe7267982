package data

// Streaming: a split is listed (file names and labels, or the sharded
// layout's manifest) and its images are read and decoded while they are
// used, on every core, a bounded number ahead. Memory holds the listing and
// a window of decoded images, never the data set.

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"
)

// ErrInMemoryOnly marks formats that are read into memory even when
// streaming is asked for: IDX and CIFAR-10's binary release are a few files
// of fixed-size records (47 and 180 MB decoded).
var ErrInMemoryOnly = errors.New("small fixed-size records, read into memory")

// Stream is one split of a data set, listed but not decoded.
type Stream struct {
	Labels  []int // per image: a class index into Classes, or Unlabelled
	Classes []string
	Shape   Shape
	Source  string
	// Sequential streams (tar archives, the sharded layout) are read shard by
	// shard, each from its start; the others (folders, zip archives) image
	// by image, in any order.
	Sequential bool

	read   func(i int) ([]byte, error) // random access
	where  func(i int) string
	shards []shard // sequential, in their natural order
	lim    Limits
	skip   bool
	bad    *badLog
}

// shard is a run of a sequential stream's images (first..first+count-1),
// read in order.
type shard struct {
	first, count int
	// scan reads the shard from its start, calling fn for each image k
	// (0..count-1) that need(k) asks for, with its bytes or the reason they
	// cannot be had (a bad image); an error of scan's own is the shard's
	// (unreadable, truncated, not as listed).
	scan  func(ctx context.Context, need func(k int) bool, fn func(k int, raw []byte, err error) error) error
	where func(k int) string
}

// Streams are a data set's splits for streaming.
type Streams struct {
	Train, Test *Stream
}

// Len is the number of images.
func (s *Stream) Len() int { return len(s.Labels) }

// Shards is the number of shards a sequential stream is read in (0 for
// random access).
func (s *Stream) Shards() int { return len(s.shards) }

// Where names image i for messages: a file, an archive member or a shard's.
func (s *Stream) Where(i int) string {
	if s.where != nil {
		return s.where(i)
	}
	j := sort.Search(len(s.shards), func(j int) bool { return s.shards[j].first+s.shards[j].count > i })
	sh := s.shards[j]
	return sh.where(i - sh.first)
}

// OpenStreams lists a data set for streaming: folders and zip archives are
// read image by image, .tar and .tar.gz archives and the sharded layout
// shard by shard. IDX files and CIFAR-10's binary release are
// ErrInMemoryOnly.
func OpenStreams(ctx context.Context, o Options) (*Streams, error) {
	if err := o.Shape.check(); err != nil {
		return nil, err
	}
	if o.Format == "shards" {
		st, err := openShards(ctx, o)
		return st, o.named(err)
	}
	if o.Format == "fashion_mnist" || o.Format == "mnist" {
		return nil, fmt.Errorf("data.format %s: %w", o.Format, ErrInMemoryOnly)
	}
	t, err := openStreamTree(o.Path, o.Limits)
	if err != nil {
		return nil, o.named(err)
	}
	var l *listing
	switch o.Format {
	case "cifar10":
		if _, ok := t.find("data_batch_1.bin"); ok {
			return nil, fmt.Errorf("%s: CIFAR-10's binary release: %w", o.Path, ErrInMemoryOnly)
		}
		l, err = listCIFAR10Folder(t, o)
	case "tiny_imagenet":
		l, err = listTinyImageNet(t, o)
	case "folder":
		l, err = listFolder(t, o)
	default:
		return nil, fmt.Errorf("data.format %q: want one of %v", o.Format, Formats)
	}
	if err != nil {
		return nil, o.named(err)
	}
	bad := &badLog{seen: map[string]BadImage{}}
	return &Streams{Train: l.stream(l.train, o, bad), Test: l.stream(l.test, o, bad)}, nil
}

// stream makes a split's items a Stream: read by name from a folder or zip
// archive, or in archive order from a tar archive (one shard).
func (l *listing) stream(items []item, o Options, bad *badLog) *Stream {
	t := l.t
	s := &Stream{Classes: l.classes, Shape: o.Shape, Source: o.Path, lim: o.Limits, skip: o.SkipBad, bad: bad, Sequential: t.sequential()}
	if s.Sequential {
		items = append([]item(nil), items...)
		sort.Slice(items, func(a, b int) bool { return t.order[items[a].name] < t.order[items[b].name] })
	}
	s.Labels = make([]int, len(items))
	for i, it := range items {
		s.Labels[i] = it.label
	}
	if !s.Sequential {
		s.read = func(i int) ([]byte, error) { return t.read(items[i].name) }
		s.where = func(i int) string { return t.where(items[i].name) }
		return s
	}
	byMember := map[int]int{}
	for i, it := range items {
		byMember[t.order[it.name]] = i
	}
	s.shards = []shard{{first: 0, count: len(items),
		scan: func(_ context.Context, need func(int) bool, fn func(int, []byte, error) error) error {
			return t.scanItems(byMember, need, fn)
		},
		where: func(k int) string { return t.where(items[k].name) },
	}}
	return s
}

// EpochPermutation is the order of an epoch's n images when they can be
// read in any order: a permutation that depends only on the seed and the
// epoch (the in-memory order too, so both modes see the same batches).
func EpochPermutation(seed int64, epoch, n int) []int {
	return rand.New(rand.NewPCG(uint64(seed), uint64(epoch))).Perm(n)
}

// EpochOrder is the order in which epoch's images are used. Random access:
// EpochPermutation. Sequential: the shards in a permutation drawn from the
// seed and the epoch, their images in turn through a shuffle buffer of
// buffer images (each image read replaces one drawn at random from the
// buffer). It is a pure function of its arguments, so a resumed run can
// compute where it stopped. shardOrder is the order the shards are read in.
func (s *Stream) EpochOrder(seed int64, epoch, buffer int) (ids []int32, shardOrder []int) {
	n := s.Len()
	ids = make([]int32, 0, n)
	if !s.Sequential {
		for _, i := range EpochPermutation(seed, epoch, n) {
			ids = append(ids, int32(i))
		}
		return ids, nil
	}
	rng := rand.New(rand.NewPCG(uint64(seed)^0x5eed5, uint64(epoch)))
	shardOrder = rng.Perm(len(s.shards))
	buf := make([]int32, 0, max(1, min(buffer, n)))
	for _, j := range shardOrder {
		sh := s.shards[j]
		for k := 0; k < sh.count; k++ {
			id := int32(sh.first + k)
			if len(buf) < cap(buf) {
				buf = append(buf, id)
				continue
			}
			r := rng.IntN(len(buf))
			ids = append(ids, buf[r])
			buf[r] = id
		}
	}
	for _, r := range rng.Perm(len(buf)) {
		ids = append(ids, buf[r])
	}
	return ids, shardOrder
}

// Plan is one pass of a Reader: the images IDs[From:] in that order, read
// (sequential streams) shard by shard in ShardOrder (nil: the natural order).
type Plan struct {
	IDs        []int32
	From       int
	ShardOrder []int
}

// Reader reads the images of a sequence of plans in order, decoding them on
// every core ahead of Next, within a window of decoded images.
type Reader struct {
	s       *Stream
	mu      sync.Mutex
	cond    *sync.Cond
	done    map[int64]decoded
	free    chan []byte
	err     error
	next    int64
	stopCtx func() bool
	cancel  context.CancelFunc
}

type decoded struct {
	px  []byte
	id  int32
	bad bool
}

type readJob struct {
	g   int64 // position in the reader's sequence
	id  int32
	raw []byte // nil: read it (random access)
	err error  // the shard could not give it
	buf []byte
}

// Read starts reading plans. window bounds the decoded images held (read but
// not yet taken by Next); a sequential stream read through a shuffle buffer
// of b images needs a window above b. Close ends it.
func (s *Stream) Read(ctx context.Context, plans iter.Seq[Plan], window int) *Reader {
	ctx, cancel := context.WithCancel(ctx)
	r := &Reader{s: s, done: map[int64]decoded{}, free: make(chan []byte, window), cancel: cancel}
	r.cond = sync.NewCond(&r.mu)
	for i := 0; i < window; i++ {
		r.free <- nil // allocated when first used
	}
	r.stopCtx = context.AfterFunc(ctx, func() { r.fail(ctx.Err()) })
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan readJob, workers)
	for w := 0; w < workers; w++ {
		go func() {
			for j := range jobs {
				r.decode(j)
			}
		}()
	}
	go func() {
		defer close(jobs)
		if err := r.dispatch(ctx, plans, jobs); err != nil {
			r.fail(err)
		}
	}()
	return r
}

// dispatch hands the plans' images to the decoders in reading order, each
// with a buffer from the window.
func (r *Reader) dispatch(ctx context.Context, plans iter.Seq[Plan], jobs chan<- readJob) error {
	s := r.s
	var base int64
	send := func(j readJob) error {
		select {
		case j.buf = <-r.free:
		case <-ctx.Done():
			return ctx.Err()
		}
		if j.buf == nil {
			j.buf = make([]byte, s.Shape.bytes())
		}
		select {
		case jobs <- j:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for p := range plans {
		if !s.Sequential {
			for i := p.From; i < len(p.IDs); i++ {
				if err := send(readJob{g: base + int64(i-p.From), id: p.IDs[i]}); err != nil {
					return err
				}
			}
		} else {
			pos := make([]int32, s.Len())
			for i := range pos {
				pos[i] = -1
			}
			for i := p.From; i < len(p.IDs); i++ {
				pos[p.IDs[i]] = int32(i - p.From)
			}
			order := p.ShardOrder
			if order == nil {
				order = make([]int, len(s.shards))
				for i := range order {
					order[i] = i
				}
			}
			for _, j := range order {
				sh := s.shards[j]
				err := sh.scan(ctx, func(k int) bool { return pos[sh.first+k] >= 0 }, func(k int, raw []byte, err error) error {
					id := int32(sh.first + k)
					return send(readJob{g: base + int64(pos[id]), id: id, raw: raw, err: err})
				})
				if err != nil {
					return err
				}
			}
		}
		base += int64(len(p.IDs) - p.From)
	}
	return nil
}

func (r *Reader) decode(j readJob) {
	s := r.s
	raw, err := j.raw, j.err
	if raw == nil && err == nil {
		raw, err = s.read(int(j.id))
	}
	if err == nil {
		_, err = DecodeInto(j.buf, raw, s.Shape, s.lim)
	}
	if err != nil {
		b := BadImage{Path: s.Where(int(j.id)), Err: err}
		if !s.skip {
			r.fail(fmt.Errorf("%w (pass --skip-bad to leave such images out)", b))
			return
		}
		s.bad.add(b)
	}
	r.mu.Lock()
	r.done[j.g] = decoded{px: j.buf, id: j.id, bad: err != nil}
	r.mu.Unlock()
	r.cond.Broadcast()
}

func (r *Reader) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
	r.cond.Broadcast()
}

// Next copies the next image into dst and returns its id; ok is false for
// a bad image (skipped with Options.SkipBad: dst is left alone). The caller
// knows how many images its plans hold and calls Next that often.
func (r *Reader) Next(dst []byte) (id int, ok bool, err error) {
	r.mu.Lock()
	d, have := r.done[r.next]
	for !have && r.err == nil {
		r.cond.Wait()
		d, have = r.done[r.next]
	}
	if !have {
		err := r.err
		r.mu.Unlock()
		return 0, false, err
	}
	delete(r.done, r.next)
	r.next++
	r.mu.Unlock()
	if !d.bad {
		copy(dst, d.px)
	}
	r.free <- d.px
	return int(d.id), !d.bad, nil
}

// Close stops the reader.
func (r *Reader) Close() {
	r.cancel()
	r.stopCtx()
}

// Each reads the images ids (nil: all) in that order in batches of up to
// batch images and calls fn with each batch's pixels and ids; bad images
// (with Options.SkipBad) are left out of the batches.
func (s *Stream) Each(ctx context.Context, ids []int32, batch int, fn func(pixels []byte, ids []int) error) error {
	if ids == nil {
		ids = make([]int32, s.Len())
		for i := range ids {
			ids[i] = int32(i)
		}
	}
	once := func(yield func(Plan) bool) { yield(Plan{IDs: ids}) }
	r := s.Read(ctx, once, 2*batch+2*runtime.GOMAXPROCS(0))
	defer r.Close()
	per := s.Shape.bytes()
	buf := make([]byte, batch*per)
	got := make([]int, 0, batch)
	for i := 0; i < len(ids); i++ {
		id, ok, err := r.Next(buf[len(got)*per : (len(got)+1)*per])
		if err != nil {
			return err
		}
		if ok {
			got = append(got, id)
		}
		if len(got) == batch || (i == len(ids)-1 && len(got) > 0) {
			if err := fn(buf[:len(got)*per], got); err != nil {
				return err
			}
			got = got[:0]
		}
	}
	return nil
}

// Images decodes the given images (for retrieval grids), in one pass in
// their natural order; a bad image has no entry.
func (s *Stream) Images(ctx context.Context, ids []int) (map[int][]byte, error) {
	sorted := append([]int(nil), ids...)
	sort.Ints(sorted)
	var want []int32
	for i, id := range sorted {
		if i == 0 || id != sorted[i-1] {
			want = append(want, int32(id))
		}
	}
	out := map[int][]byte{}
	err := s.Each(ctx, want, 64, func(px []byte, got []int) error {
		per := s.Shape.bytes()
		for j, id := range got {
			out[id] = append([]byte(nil), px[j*per:(j+1)*per]...)
		}
		return nil
	})
	return out, err
}

// decode reads both splits into memory.
func (st *Streams) decode(ctx context.Context) (*Splits, error) {
	out := &Splits{}
	for _, sp := range []struct {
		s   *Stream
		dst **Set
	}{{st.Train, &out.Train}, {st.Test, &out.Test}} {
		s := sp.s
		set := &Set{H: s.Shape.H, W: s.Shape.W, C: s.Shape.C, Classes: s.Classes, Source: s.Source, Labels: []int{}}
		err := s.Each(ctx, nil, 256, func(px []byte, ids []int) error {
			set.Images = append(set.Images, px...)
			for _, id := range ids {
				set.Labels = append(set.Labels, s.Labels[id])
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		*sp.dst = set
	}
	if out.Train.Len() == 0 {
		return nil, fmt.Errorf("%s: no training images could be decoded", st.Train.Source)
	}
	out.Bad = st.Train.Bad()
	return out, nil
}

// Bad lists the distinct images found bad so far (with Options.SkipBad) in
// this stream and the others of its data set, in the order they were met.
func (s *Stream) Bad() []BadImage { return s.bad.list() }

// badLog collects the bad images a stream met, once each.
type badLog struct {
	mu    sync.Mutex
	seen  map[string]BadImage
	order []string
}

func (b *badLog) add(img BadImage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.seen[img.Path]; !ok {
		b.seen[img.Path] = img
		b.order = append(b.order, img.Path)
	}
}

func (b *badLog) list() []BadImage {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []BadImage
	for _, p := range b.order {
		out = append(out, b.seen[p])
	}
	return out
}
