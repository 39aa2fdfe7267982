package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/testkit/emulators"
	"github.com/infomax/infomax/testkit/testmodel"
)

// streamConfig is the test model's config on an image folder or the
// sharded layout of real Fashion-MNIST images.
func streamConfig(t *testing.T, format, path, extra string) string {
	t.Helper()
	cfg := testmodel.Config()
	p := filepath.Join(t.TempDir(), "stream.yaml")
	yaml := fmt.Sprintf(`name: stream
export_dir: %s
seed: %d
data: {format: %s, path: %s, cache_dir: "off"%s}
model: {z_dim: %d}
train: {batch_size: 32, epochs: 3, log_every: 1, checkpoint_every: 10, keep_checkpoints: 2, intra_op_threads: 2, inter_op_threads: 1}
eval: {weighted_k: 50, probe_epochs: 0}
`, testmodel.Export(t, cfg), cfg.Seed, format, path, extra, cfg.Model.ZDim)
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func trainFor(t *testing.T, cfg, dir string, maxSteps int64, resume bool) string {
	t.Helper()
	var out bytes.Buffer
	o := trainOptions{ConfigFile: cfg, RunDir: dir, MaxSteps: maxSteps, Resume: resume}
	if resume {
		o.ConfigFile = ""
	}
	if err := runTrain(context.Background(), o, &out); err != nil {
		t.Fatalf("train %s: %v\n%s", dir, err, out.String())
	}
	return out.String()
}

func sameLosses(t *testing.T, what string, a, b []metric) {
	t.Helper()
	if len(a) != len(b) || len(a) == 0 {
		t.Fatalf("%s: %d and %d logged steps", what, len(a), len(b))
	}
	for i := range a {
		if a[i].Step != b[i].Step || a[i].Loss != b[i].Loss || a[i].Global != b[i].Global || a[i].Local != b[i].Local || a[i].Prior != b[i].Prior {
			t.Fatalf("%s: step %d: %+v vs step %d: %+v", what, a[i].Step, a[i], b[i].Step, b[i])
		}
	}
}

// Streaming a folder reads image by image in the in-memory order: the
// same batches, so the same losses, to the last digit.
func TestStreamingFolderTrainsAsInMemory(t *testing.T) {
	folder := testmodel.FashionMNISTFolder(t, 640, 200)
	mem, st := filepath.Join(t.TempDir(), "mem"), filepath.Join(t.TempDir(), "stream")
	trainFor(t, streamConfig(t, "folder", folder, ""), mem, 25, false)
	out := trainFor(t, streamConfig(t, "folder", folder, ", streaming: true"), st, 25, false)
	if !strings.Contains(out, "data: streaming 640 training and 200 test images") || !strings.Contains(out, "image by image") {
		t.Errorf("the run does not say it streams:\n%s", out)
	}
	sameLosses(t, "in memory vs streaming", readMetrics(t, mem), readMetrics(t, st))
	for _, f := range []string{"report.json", "retrieval_cosine.png", "features_train.npy"} {
		if _, err := os.Stat(filepath.Join(st, f)); err != nil {
			t.Errorf("the streamed run's evaluation: %v", err)
		}
	}
	if raw, _ := os.ReadFile(filepath.Join(st, "report.md")); !bytes.Contains(raw, []byte("640 training images")) {
		t.Errorf("report.md of the streamed run:\n%s", raw)
	}
}

// A streamed run on the sharded layout (read shard by shard through a
// shuffle buffer), stopped mid-epoch and resumed, logs the losses of an
// uninterrupted run.
func TestStreamingShardsResumeExactly(t *testing.T) {
	folder := testmodel.FashionMNISTFolder(t, 640, 200)
	shards := filepath.Join(t.TempDir(), "shards")
	var out bytes.Buffer
	if err := runShards(context.Background(), shardsOptions{Format: "folder", Path: folder, Out: shards, PerShard: 50, Seed: 1}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "train: 640 images in 13 shards") {
		t.Errorf("runner data shards said:\n%s", out.String())
	}
	cfg := streamConfig(t, "shards", shards, ", streaming: true, shuffle_buffer: 100")
	whole, parts := filepath.Join(t.TempDir(), "whole"), filepath.Join(t.TempDir(), "parts")
	log := trainFor(t, cfg, whole, 0, false)
	if !strings.Contains(log, "shard by shard (13 shards") {
		t.Errorf("the run does not say how it streams:\n%s", log)
	}
	trainFor(t, cfg, parts, 25, false) // stops at step 25: epoch 1, batch 5
	res := trainFor(t, "", parts, 0, true)
	if !strings.Contains(res, "resumed") || !strings.Contains(res, "step 25,") {
		t.Errorf("the resumed run does not say where it resumed:\n%s", res)
	}
	sameLosses(t, "uninterrupted vs stopped at step 25 and resumed", readMetrics(t, whole), readMetrics(t, parts))
}

// Training streams the sharded layout from an object store as from a
// folder: `runner data shards --out s3://…` writes it into an S3 server
// started here (gofakes3, reached through the AWS SDK as S3 would be), and
// 50 steps read from it log the losses of the same shards read locally; a
// run stopped at step 25 and resumed from the store logs them too.
func TestStreamingShardsFromObjectStore(t *testing.T) {
	emulators.Start(t, "corpus")
	folder := testmodel.FashionMNISTFolder(t, 640, 200)
	local := filepath.Join(t.TempDir(), "shards")
	ctx := context.Background()
	for _, out := range []string{local, "s3://corpus/fashion/shards"} {
		var log bytes.Buffer
		if err := runShards(ctx, shardsOptions{Format: "folder", Path: folder, Out: out, PerShard: 50, Seed: 1}, &log, &log); err != nil {
			t.Fatalf("runner data shards --out %s: %v\n%s", out, err, log.String())
		}
	}
	var log bytes.Buffer
	if err := runShards(ctx, shardsOptions{Format: "folder", Path: folder, Out: "s3://corpus/fashion/shards", PerShard: 50, Seed: 1}, &log, &log); err == nil || !strings.Contains(err.Error(), "holds a sharded layout already") {
		t.Errorf("shards written over a sharded layout in the store: %v", err)
	}
	const extra = ", streaming: true, shuffle_buffer: 100"
	fromDisk, fromS3, parts := filepath.Join(t.TempDir(), "disk"), filepath.Join(t.TempDir(), "s3"), filepath.Join(t.TempDir(), "parts")
	trainFor(t, streamConfig(t, "shards", local, extra), fromDisk, 50, false)
	s3cfg := streamConfig(t, "shards", "s3://corpus/fashion/shards", extra)
	out := trainFor(t, s3cfg, fromS3, 50, false)
	if !strings.Contains(out, "from s3://corpus/fashion/shards") || !strings.Contains(out, "shard by shard (13 shards") {
		t.Errorf("the run does not say it streams from the store:\n%s", out)
	}
	sameLosses(t, "shards on disk vs in S3", readMetrics(t, fromDisk), readMetrics(t, fromS3))
	trainFor(t, s3cfg, parts, 25, false)
	trainFor(t, "", parts, 50, true)
	sameLosses(t, "from S3 uninterrupted vs stopped at step 25 and resumed", readMetrics(t, fromS3), readMetrics(t, parts))
	if m := readMetrics(t, fromS3); m[len(m)-1].Step != 50 {
		t.Errorf("the run from S3 stopped at step %d, want 50", m[len(m)-1].Step)
	}
}
