// Package cpuinfo says which CPU this is and whether it computes bfloat16 natively.
//
// Package cpuinfo says which CPU this is and whether it computes bfloat16
// dot products natively: what model.precision: auto decides on.
//
// The answer comes from the CPU's own feature flags (CPUID, through
// golang.org/x/sys/cpu): AMX's bfloat16 tiles (amx_bf16) or AVX-512's
// bfloat16 dot products (avx512_bf16). TensorFlow's oneDNN kernels use the
// same flags to pick their bfloat16 code; without either, oneDNN converts
// bfloat16 to float32 around every product and bfloat16 runs slower than
// float32 (docs/speed.md). The environment variable INFOMAX_CPU_BF16
// replaces the answer (amx, avx512_bf16 or none), so that the choice can be
// tested, and forced, on any machine.
package cpuinfo

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/cpu"
)

// Env names the variable that replaces the CPU's own answer.
const Env = "INFOMAX_CPU_BF16"

// The units that compute bfloat16 dot products natively, as BF16.Unit names
// them.
const (
	AMX        = "AMX"
	AVX512BF16 = "AVX512_BF16"
)

// BF16 is whether, and by which unit, this CPU computes bfloat16 dot
// products natively.
type BF16 struct {
	// Unit is AMX, AVX512BF16, or "" (neither: no native bfloat16). AMX
	// wins when the CPU has both.
	Unit string
	// Injected says that Env set Unit, not the CPU.
	Injected bool
}

// Native reports whether Unit is set.
func (b BF16) Native() bool { return b.Unit != "" }

// String says it for a person: "AMX", "AVX512_BF16", "neither AMX nor
// AVX512_BF16", with ", from INFOMAX_CPU_BF16" when injected.
func (b BF16) String() string {
	s := b.Unit
	if s == "" {
		s = "neither AMX nor AVX512_BF16"
	}
	if b.Injected {
		s += ", from " + Env
	}
	return s
}

// NativeBF16 is this CPU's answer, or Env's when set; a value of Env that is
// none of amx, avx512_bf16 and none is an error that names it.
func NativeBF16() (BF16, error) {
	if v, ok := os.LookupEnv(Env); ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "amx", "amx_bf16":
			return BF16{Unit: AMX, Injected: true}, nil
		case "avx512_bf16", "avx512bf16":
			return BF16{Unit: AVX512BF16, Injected: true}, nil
		case "none", "":
			return BF16{Injected: true}, nil
		}
		return BF16{}, fmt.Errorf("%s=%q: want amx, avx512_bf16 or none (or unset it: the CPU's own flags decide)", Env, v)
	}
	return detected(), nil
}

// detected is the CPU's own answer.
func detected() BF16 {
	switch {
	case cpu.X86.HasAMXBF16 && cpu.X86.HasAMXTile:
		return BF16{Unit: AMX}
	case cpu.X86.HasAVX512BF16:
		return BF16{Unit: AVX512BF16}
	}
	return BF16{}
}

// Flags lists the CPU's own bfloat16 flags as /proc/cpuinfo spells them
// (amx_bf16, avx512_bf16): what a speed figure is quoted beside. Env does
// not change them.
func Flags() []string {
	var f []string
	if cpu.X86.HasAMXBF16 {
		f = append(f, "amx_bf16")
	}
	if cpu.X86.HasAVX512BF16 {
		f = append(f, "avx512_bf16")
	}
	return f
}

// Model is the CPU's model name ("AMD EPYC", "Intel(R) Xeon(R) Platinum
// 8488C"), read from /proc/cpuinfo; where there is none, the architecture.
func Model() string {
	f, err := os.Open("/proc/cpuinfo")
	if err == nil {
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				return strings.TrimSpace(v)
			}
		}
	}
	return runtime.GOARCH
}

// Describe is one line naming the CPU and its bfloat16 flags, for the
// lines printed beside speed figures: "AMD EPYC (2 cores; bfloat16 flags:
// none)".
func Describe() string {
	flags := strings.Join(Flags(), ", ")
	if flags == "" {
		flags = "none"
	}
	return fmt.Sprintf("%s (%d cores; bfloat16 flags: %s)", Model(), runtime.NumCPU(), flags)
}
