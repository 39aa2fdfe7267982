// Package memstat reads this process's memory figures, for tests and benchmarks.
//
// Package memstat reads this process's memory figures from /proc/self/status
// (Linux), for tests and benchmarks that bound memory.
package memstat

import (
	"os"
	"strconv"
	"strings"
)

// ResidentMiB is the resident set size now (VmRSS), in MiB; -1 where it
// cannot be read.
func ResidentMiB() float64 { return field("VmRSS:") }

// PeakMiB is the largest resident set size so far (VmHWM), in MiB; -1 where
// it cannot be read.
func PeakMiB() float64 { return field("VmHWM:") }

func field(name string) float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, name); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				return -1
			}
			return kb / 1024
		}
	}
	return -1
}

// PeakGrowth runs f and returns how much the peak resident set size grew
// meanwhile, in MiB: the most f (and whatever ran beside it) added.
func PeakGrowth(f func()) float64 {
	before := PeakMiB()
	f()
	return PeakMiB() - before
}
