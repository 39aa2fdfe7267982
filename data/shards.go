package data

// The sharded layout (data.format: shards), for corpora larger than memory:
// a folder of plain tar files of encoded images, the way WebDataset stores
// them, plus shards.json.
//
//	shards.json           {"format": "infomax-shards", "version": 1, "classes": [...],
//	                       "splits": {"train": {"images": N, "shards": [{"file", "images", "labels"}]}, "test": ...}}
//	train-00000.tar       000000000.jpg 000000000.cls 000000001.png 000000001.cls ...
//	test-00000.tar        ...
//
// Each sample is its image file as it was (not re-encoded) under a key, and
// its class index as text in key.cls (none for an unlabelled image): any tar
// tool lists it, WebDataset reads it. The labels are in shards.json too, so
// a split's size, classes and labels are known without reading a shard.
// WriteShards writes it from any image layout, samples in a seeded random
// order, so that every shard mixes every class.

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/infomax/infomax/internal/store"
)

// ShardsFile is the sharded layout's manifest.
const ShardsFile = "shards.json"

const shardsFormat = "infomax-shards"

// ShardList describes a sharded data set.
type ShardList struct {
	Format  string                 `json:"format"`
	Version int                    `json:"version"`
	Source  string                 `json:"source,omitempty"` // what it was written from
	Classes []string               `json:"classes"`
	Splits  map[string]*ShardSplit `json:"splits"` // "train", "test"
}

// ShardSplit is one split's shards.
type ShardSplit struct {
	Images int          `json:"images"`
	Shards []ShardEntry `json:"shards"`
}

// ShardEntry is one tar file of a split.
type ShardEntry struct {
	File   string `json:"file"`
	Images int    `json:"images"`
	Labels []int  `json:"labels"`
}

// ReadShardList reads and checks DIR/shards.json; DIR is a local
// folder or a folder of an object store (s3://bucket/prefix, gs://…).
func ReadShardList(ctx context.Context, dir string, lim Limits) (*ShardList, error) {
	p := store.Join(dir, ShardsFile)
	lim = lim.orDefaults()
	raw, err := store.ReadFile(ctx, p, lim.MaxFileBytes)
	if errors.Is(err, store.ErrTooLarge) {
		return nil, fmt.Errorf("%w (data.max_file_mib)", err)
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: no %s: not the sharded layout (write one with `runner data shards`), or its writing did not finish", dir, ShardsFile)
	}
	if err != nil {
		return nil, err
	}
	var m ShardList
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if m.Format != shardsFormat || m.Version != 1 {
		return nil, fmt.Errorf("%s: format %q version %d: want %q version 1", p, m.Format, m.Version, shardsFormat)
	}
	if m.Splits["train"] == nil {
		return nil, fmt.Errorf("%s: no train split", p)
	}
	for name, sp := range m.Splits {
		if name != "train" && name != "test" {
			return nil, fmt.Errorf("%s: split %q: want train and test", p, name)
		}
		total := 0
		for i, sh := range sp.Shards {
			where := fmt.Sprintf("%s: splits.%s.shards[%d]", p, name, i)
			if sh.File == "" || sh.File != path.Base(sh.File) || strings.ContainsAny(sh.File, `/\`) || !strings.HasSuffix(sh.File, ".tar") {
				return nil, fmt.Errorf("%s: file %q: want a .tar file name in the same folder", where, sh.File)
			}
			if sh.Images < 1 || len(sh.Labels) != sh.Images {
				return nil, fmt.Errorf("%s (%s): %d images and %d labels: want as many labels as images, at least one", where, sh.File, sh.Images, len(sh.Labels))
			}
			for _, l := range sh.Labels {
				if l < Unlabelled || l >= len(m.Classes) {
					return nil, fmt.Errorf("%s (%s): label %d out of range (%d classes; -1: unlabelled)", where, sh.File, l, len(m.Classes))
				}
			}
			total += sh.Images
		}
		if total != sp.Images {
			return nil, fmt.Errorf("%s: splits.%s: its shards hold %d images, it says %d", p, name, total, sp.Images)
		}
	}
	return &m, nil
}

// openShards lists the sharded layout for streaming.
func openShards(ctx context.Context, o Options) (*Streams, error) {
	m, err := ReadShardList(ctx, o.Path, o.Limits)
	if err != nil {
		return nil, err
	}
	bad := &badLog{seen: map[string]BadImage{}}
	split := func(name string) *Stream {
		s := &Stream{Classes: m.Classes, Shape: o.Shape, Source: o.Path, Sequential: true, lim: o.Limits, skip: o.SkipBad, bad: bad, Labels: []int{}}
		sp := m.Splits[name]
		if sp == nil {
			return s
		}
		for _, e := range sp.Shards {
			file := store.Join(o.Path, e.File)
			s.shards = append(s.shards, shard{first: len(s.Labels), count: e.Images,
				scan: func(ctx context.Context, need func(int) bool, fn func(int, []byte, error) error) error {
					return scanShard(ctx, file, e.Images, o.Limits, need, fn)
				},
				where: func(k int) string { return fmt.Sprintf("%s: image %d", file, k) },
			})
			s.Labels = append(s.Labels, e.Labels...)
		}
		return s
	}
	return &Streams{Train: split("train"), Test: split("test")}, nil
}

// scanShard reads one shard's images in order, a local file or an object
// streamed from its store: the k-th image member is image k; other members
// (key.cls, …) are skipped.
func scanShard(ctx context.Context, file string, count int, lim Limits, need func(int) bool, fn func(int, []byte, error) error) error {
	lim = lim.orDefaults()
	f, size, err := store.Open(ctx, file)
	if err != nil {
		return err
	}
	defer f.Close()
	k := 0
	err = scanTar(bufio.NewReaderSize(f, 1<<20), file, size, false, lim, func(h *tar.Header, name string, body io.Reader) error {
		if h.Typeflag == tar.TypeDir || !isImage(name) {
			return nil
		}
		if k >= count {
			return fmt.Errorf("%s: more than the %d images %s lists", file, count, ShardsFile)
		}
		k++
		if !need(k - 1) {
			return nil
		}
		if h.Size > lim.MaxFileBytes {
			return fn(k-1, nil, fmt.Errorf("%s: %w", name, lim.tooLarge(h.Size)))
		}
		raw, err := readMember(body, h.Size, file, name)
		if err != nil {
			return err
		}
		return fn(k-1, raw, nil)
	})
	if err == nil && k != count {
		err = fmt.Errorf("%s: %d images, %s lists %d (truncated or replaced shard)", file, k, ShardsFile, count)
	}
	return err
}

// ShardOptions say how WriteShards writes.
type ShardOptions struct {
	Out      string // a new or empty folder
	PerShard int    // images per tar file
	Seed     int64  // the order samples are written in
	Progress func(done, total int)
}

// WriteShards writes the data set o names (an image layout in a folder or a
// zip archive: anything read image by image) into the sharded layout.
// Every image's header is checked against o.Limits; with o.SkipBad a bad
// one is left out and reported, without it it is the error. Each tar file
// is written under a temporary name and renamed; shards.json comes last, so
// a folder without it is an unfinished copy.
func WriteShards(ctx context.Context, o Options, so ShardOptions) (*ShardList, []BadImage, error) {
	if so.PerShard < 1 {
		return nil, nil, fmt.Errorf("images per shard: %d: want at least 1", so.PerShard)
	}
	if o.Format == "shards" {
		return nil, nil, fmt.Errorf("%s is already in the sharded layout", o.Path)
	}
	o.Shape = Shape{1, 1, 3}
	st, err := OpenStreams(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	if st.Train.Sequential {
		return nil, nil, fmt.Errorf("%s: a tar archive can only be read in order, and the shards are written in a shuffled order: extract it (tar xf) or use a zip, and pass the folder", o.Path)
	}
	if store.IsURL(so.Out) {
		if there, err := store.Exists(ctx, store.Join(so.Out, ShardsFile)); err != nil || there {
			return nil, nil, errors.Join(err, fmt.Errorf("%s: holds a sharded layout already: write the shards under a new prefix", so.Out))
		}
	} else if entries, err := os.ReadDir(so.Out); err == nil && len(entries) > 0 {
		return nil, nil, fmt.Errorf("%s: not empty: write the shards into a new folder", so.Out)
	}
	if err := store.MkdirAll(so.Out); err != nil {
		return nil, nil, err
	}
	m := &ShardList{Format: shardsFormat, Version: 1, Source: o.Path, Classes: st.Train.Classes, Splits: map[string]*ShardSplit{}}
	total := st.Train.Len() + st.Test.Len()
	var bad []BadImage
	done := 0
	lim := o.Limits.orDefaults()
	for _, sp := range []struct {
		name string
		s    *Stream
	}{{"train", st.Train}, {"test", st.Test}} {
		if sp.s.Len() == 0 {
			continue
		}
		out := &ShardSplit{}
		perm := rand.New(rand.NewPCG(uint64(so.Seed), 0x5a4d)).Perm(sp.s.Len())
		for first := 0; first < len(perm); first += so.PerShard {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
			ids := perm[first:min(first+so.PerShard, len(perm))]
			file := fmt.Sprintf("%s-%05d.tar", sp.name, len(out.Shards))
			e, b, err := writeShard(ctx, store.Join(so.Out, file), sp.s, ids, len(out.Shards)*so.PerShard, lim, o.SkipBad)
			if err != nil {
				return nil, nil, err
			}
			bad = append(bad, b...)
			done += len(ids)
			if so.Progress != nil {
				so.Progress(done, total)
			}
			if e.Images == 0 {
				continue
			}
			e.File = file
			out.Shards = append(out.Shards, *e)
			out.Images += e.Images
		}
		m.Splits[sp.name] = out
	}
	if m.Splits["train"] == nil {
		return nil, nil, fmt.Errorf("%s: no training images left to write", o.Path)
	}
	raw, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return nil, nil, err
	}
	if err := store.WriteFile(ctx, store.Join(so.Out, ShardsFile), append(raw, '\n')); err != nil {
		return nil, nil, err
	}
	return m, bad, nil
}

// writeShard writes the images ids of s into one tar file (or object), keys
// numbered from key.
func writeShard(ctx context.Context, file string, s *Stream, ids []int, key int, lim Limits, skipBad bool) (*ShardEntry, []BadImage, error) {
	e := &ShardEntry{Labels: []int{}}
	var bad []BadImage
	err := store.Write(ctx, file, func(w io.Writer) error {
		tw := tar.NewWriter(w)
		for j, id := range ids {
			raw, err := s.read(id)
			if err == nil {
				err = lim.checkHeader(raw)
			}
			if err != nil {
				b := BadImage{Path: s.Where(id), Err: err}
				if !skipBad {
					return fmt.Errorf("%w (pass --skip-bad to leave such images out)", b)
				}
				bad = append(bad, b)
				continue
			}
			name := fmt.Sprintf("%09d", key+j)
			ext := strings.ToLower(path.Ext(s.Where(id)))
			if err := writeMember(tw, name+ext, raw); err != nil {
				return err
			}
			if l := s.Labels[id]; l != Unlabelled {
				if err := writeMember(tw, name+".cls", []byte(strconv.Itoa(l))); err != nil {
					return err
				}
			}
			e.Labels = append(e.Labels, s.Labels[id])
			e.Images++
		}
		return tw.Close()
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	if e.Images == 0 {
		store.Remove(ctx, file)
	}
	return e, bad, nil
}

func writeMember(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}
