package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/infomax/infomax/checkpoint"
)

// smallDisk mounts a tmpfs of size MiB at a new folder (root only), removed
// when the test ends.
func smallDisk(t *testing.T, mib int) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		t.Skip("a small disk needs a tmpfs mount, which needs root (checkpoint's TestFailedSaveLeavesNothingBehind injects the failure instead)")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(mib)+"m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs refused: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// fill writes a file that takes all but keep bytes of the disk at dir.
func fill(t *testing.T, path string, keep int64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if free <= keep {
		t.Fatalf("%d bytes free, want more than %d", free, keep)
	}
	if err := os.WriteFile(path, make([]byte, free-keep), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A checkpoint save that fails on a full disk says so and leaves the last
// checkpoint in charge; it leaves nothing behind, nor does a save killed
// half-way (its temp folder is removed when the run opens), so once space is
// freed --resume works and continues the same losses.
func TestFullDiskThenResume(t *testing.T) {
	cfg := smallRun(t, "")
	disk := smallDisk(t, 16)
	dir := filepath.Join(disk, "run")
	noEval := func(args ...string) trainOptions {
		return trainOptions{RunDir: dir, Resume: true, Flags: flags(t, append([]string{"--eval.after_training=false"}, args...)...)}
	}
	o := noEval()
	o.ConfigFile, o.Resume, o.MaxSteps = cfg, false, 10
	if err := runTrain(context.Background(), o, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	ckpt, _ := filepath.Glob(filepath.Join(dir, "checkpoints", "ckpt-000010.data-*"))
	if len(ckpt) != 1 {
		t.Fatalf("checkpoint files %v", ckpt)
	}
	fi, _ := os.Stat(ckpt[0])
	// Room for metrics and events lines, not for the next checkpoint.
	filler := filepath.Join(disk, "filler")
	fill(t, filler, fi.Size()/2)
	o = noEval()
	o.MaxSteps = 20
	var out bytes.Buffer
	err := runTrain(context.Background(), o, &out)
	if err == nil || !strings.Contains(err.Error(), "No space left on device") && !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("training on a full disk: %v\n%s", err, out.String())
	}
	// TensorFlow's hint about out-of-memory tensors has nothing to say here.
	if strings.Contains(err.Error(), "OOM") || strings.Contains(err.Error(), "[[") {
		t.Errorf("the full-disk error carries TensorFlow's noise: %v", err)
	}
	t.Logf("full disk: %v", err)
	if left, _ := filepath.Glob(filepath.Join(dir, "checkpoints", "ckpt-000020*")); len(left) != 0 {
		t.Errorf("the failed save left %v", left)
	}
	if st, err := (checkpoint.Dir{Path: filepath.Join(dir, "checkpoints")}).Latest(); err != nil || st.Step != 10 {
		t.Fatalf("after the failed save, latest: %+v, %v", st, err)
	}

	// A save killed half-way: its temp folder fills the disk again.
	os.Remove(filler)
	tmpDir := filepath.Join(dir, "checkpoints", "ckpt-000020_temp")
	os.MkdirAll(tmpDir, 0o755)
	fill(t, filepath.Join(tmpDir, "part-00000-of-00001.data-00000-of-00001"), fi.Size()/2)
	out.Reset()
	if err := runTrain(context.Background(), o, &out); err != nil {
		t.Fatalf("resume with the space freed: %v\n%s", err, out.String())
	}
	if _, err := os.Stat(tmpDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the killed save's %s is still there: %v", tmpDir, err)
	}

	// The same losses as a run that never met a full disk.
	ref := filepath.Join(t.TempDir(), "ref")
	o = noEval()
	o.ConfigFile, o.Resume, o.RunDir, o.MaxSteps = cfg, false, ref, 20
	if err := runTrain(context.Background(), o, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	sameLosses(t, "after a full disk", readMetrics(t, dir), readMetrics(t, ref))
}
