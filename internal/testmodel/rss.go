package testmodel

import (
	"os"
	"strconv"
	"strings"
)

// ResidentMiB reads this process's resident set size (VmRSS) from
// /proc/self/status, in MiB; -1 where it cannot be read.
func ResidentMiB() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				return -1
			}
			return kb / 1024
		}
	}
	return -1
}
