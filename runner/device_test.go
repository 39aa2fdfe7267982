package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/encoder"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/testkit/testmodel"
)

// The run folder's device: key reaches every command that opens the run:
// device gpu on this CPU-only build fails with graph.ErrNoGPU in eval, index
// and the encoder API alike; device cpu runs.
func TestDeviceIsHonouredWhereARunIsOpened(t *testing.T) {
	dir, err := testmodel.Run(filepath.Join(t.TempDir(), "run"))
	if err != nil {
		t.Fatal(err)
	}
	setDevice := func(dev string) {
		t.Helper()
		p := filepath.Join(dir, "config.yaml")
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(string(raw), "\n") {
			if !strings.HasPrefix(l, "device:") {
				lines = append(lines, l)
			}
		}
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\ndevice: "+dev+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setDevice("gpu")
	if _, err := encoder.Load(t.Context(), dir); !errors.Is(err, graph.ErrNoGPU) {
		t.Errorf("encoder.Load with device gpu: %v, want graph.ErrNoGPU", err)
	}
	if err := runEval(context.Background(), evalOptions{RunDirs: []string{dir}}, new(bytes.Buffer)); !errors.Is(err, graph.ErrNoGPU) {
		t.Errorf("runner eval with device gpu: %v, want graph.ErrNoGPU", err)
	}
	setDevice("cpu")
	enc, err := encoder.Load(t.Context(), dir)
	if err != nil {
		t.Fatalf("encoder.Load with device cpu: %v", err)
	}
	enc.Close()
}
