package config

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/infomax/infomax/internal/cpuinfo"
)

// model.precision auto resolves to bfloat16 on a CPU with AMX or
// AVX512_BF16 and to float32 on one with neither; the answer is injected
// through INFOMAX_CPU_BF16, so every branch runs on any machine.
func TestPrecisionAutoFollowsTheCPU(t *testing.T) {
	if Defaults().Model.Precision != PrecisionAuto {
		t.Fatalf("default model.precision %q, want auto", Defaults().Model.Precision)
	}
	for _, c := range []struct{ cpu, want, why string }{
		{"amx", "bfloat16", "auto: AMX, from INFOMAX_CPU_BF16"},
		{"avx512_bf16", "bfloat16", "auto: AVX512_BF16, from INFOMAX_CPU_BF16"},
		{"none", "float32", "auto: neither AMX nor AVX512_BF16, from INFOMAX_CPU_BF16"},
	} {
		t.Setenv(cpuinfo.Env, c.cpu)
		r, err := Load(write(t, "name: x\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Model.Precision != c.want || r.PrecisionAuto != c.why {
			t.Errorf("%s: precision %q (%q), want %q (%q)", c.cpu, r.Model.Precision, r.PrecisionAuto, c.want, c.why)
		}
		if y := string(r.YAML()); !strings.HasPrefix(y, "# model.precision: "+c.want+", chosen by "+c.why) || !strings.Contains(y, "precision: "+c.want+"\n") {
			t.Errorf("%s: config.yaml does not record the choice:\n%s", c.cpu, y)
		}
		// The spec holds the resolved precision: bfloat16 is in it, float32 is left out.
		spec, _ := r.SpecJSON()
		if got := strings.Contains(string(spec), `"precision":"bfloat16"`); got != (c.want == "bfloat16") {
			t.Errorf("%s: spec %s", c.cpu, spec)
		}
	}
}

// A precision given in a file, a flag or the environment is kept on any CPU.
func TestPrecisionGivenIsKept(t *testing.T) {
	t.Setenv(cpuinfo.Env, "amx")
	r, err := Load(write(t, "model:\n  precision: float32\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Model.Precision != "float32" || r.PrecisionAuto != "" || strings.HasPrefix(string(r.YAML()), "#") {
		t.Errorf("file: precision %q (%q)", r.Model.Precision, r.PrecisionAuto)
	}
	t.Setenv(cpuinfo.Env, "none")
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	AddFlags(fs)
	if err := fs.Parse([]string{"--model.precision", "bfloat16"}); err != nil {
		t.Fatal(err)
	}
	if r, err = Load(write(t, "name: x\n"), fs); err != nil || r.Model.Precision != "bfloat16" || r.PrecisionAuto != "" {
		t.Errorf("flag: %v, %+v", err, r)
	}
}

// A run's config.yaml from before model.precision existed trained in
// float32: LoadRun reads it so on any CPU, Load takes auto.
func TestLoadRunReadsAMissingPrecisionAsFloat32(t *testing.T) {
	t.Setenv(cpuinfo.Env, "amx")
	old := write(t, "name: old\nmodel:\n  z_dim: 16\n")
	r, err := LoadRun(old, nil)
	if err != nil || r.Model.Precision != "float32" {
		t.Fatalf("LoadRun: %v, precision %v", err, r)
	}
	if r, err = Load(old, nil); err != nil || r.Model.Precision != "bfloat16" {
		t.Fatalf("Load: %v, precision %v", err, r)
	}
}

func TestBadCPUAnswerIsAnError(t *testing.T) {
	t.Setenv(cpuinfo.Env, "sapphire")
	_, err := Load(write(t, "name: x\n"), nil)
	if err == nil || !strings.Contains(err.Error(), `INFOMAX_CPU_BF16="sapphire"`) || !strings.Contains(err.Error(), "model.precision auto") {
		t.Fatalf("err = %v, want one naming INFOMAX_CPU_BF16 and its value", err)
	}
	if _, err := Load(write(t, "model:\n  precision: bf16\n"), nil); err == nil || !strings.Contains(err.Error(), "model.precision") {
		t.Fatalf("precision bf16: err = %v", err)
	}
}

// float32 and bfloat16 train the same variables: a checkpoint of either
// precision holds the weights of the other's spec, and of no other spec.
func TestSameWeightsAcrossPrecisions(t *testing.T) {
	a := Defaults()
	a.Model.Precision = "float32"
	b := a
	b.Model.Precision = "bfloat16"
	_, ha := a.SpecJSON()
	_, hb := b.SpecJSON()
	if ha == hb {
		t.Fatal("precision does not change the spec hash")
	}
	if !a.SameWeights(hb) || !b.SameWeights(ha) || !a.SameWeights(ha) {
		t.Error("SameWeights refuses the other precision's hash")
	}
	c := a
	c.Model.ZDim = 64
	if _, hc := c.SpecJSON(); a.SameWeights(hc) {
		t.Error("SameWeights accepts another z_dim")
	}
}
