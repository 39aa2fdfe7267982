// Package tflog keeps TensorFlow's own log lines off a program's output.
//
// Package tflog keeps TensorFlow's own log lines (its INFO and WARNING lines
// at start-up and when a session first runs) off a program's output unless the
// user asks for them. It is an opt-in for programs, not a library: import it
// for its side effect from a main package only,
//
//	import _ "github.com/infomax/infomax/tflog"
//
// as the project's binaries (runner, embed) do. No library package of the
// project imports it, so a Go program that uses package encoder keeps its own
// process as it was; such a program silences TensorFlow by importing this
// package in its main, or by starting with TF_CPP_MIN_LOG_LEVEL=3 set.
//
// What importing it does to the process: TensorFlow prints some of these
// lines while the dynamic loader initialises its library, before any Go code
// runs, and it reads TF_CPP_MIN_LOG_LEVEL the first time it logs. So the
// level is settled by a function in the executable's .preinit_array, which
// glibc runs after loading and relocating the libraries but before any of
// their initialisers: unless TF_CPP_MIN_LOG_LEVEL is already set, or the user
// asked for verbose output (INFOMAX_VERBOSE=1 in the environment, or
// --verbose among the arguments), it executes the program again
// (/proc/self/exe, same arguments) with TF_CPP_MIN_LOG_LEVEL=3 added to its
// environment. That costs one more dynamic load (about 80 ms on this
// project's machine), not TensorFlow's start-up, and the level then holds for
// TensorFlow and for every child process (the Python exporter) alike.
// Setting the variable in place cannot work: libc sets up its environment
// after the preinit functions run.
//
// Level 3 keeps only fatal lines, printed as TensorFlow aborts: its ERROR
// lines are dropped too, since what fails in a call reaches Go as the call's
// error status, and on CPU they are mostly notes ("oneDNN supports DT_INT32
// only on platforms with AVX-512. Falling back ..."). Parts of
// TensorFlow (MLIR, XLA) log through Abseil, which ignores that variable; at
// package initialisation the same level goes to Abseil too: to the exported
// SetMinLogLevel of the framework library, and to the private copy of
// Abseil's logging inside libtensorflow_cc.so.2 (where the MLIR line comes
// from) through its level variable, found in the library's symbol table
// (about 50 ms). Where a check fails (a stripped library, another layout),
// nothing is touched and those lines show.
//
// Under a debugger, set TF_CPP_MIN_LOG_LEVEL yourself: then nothing is
// executed again. A .preinit_array is allowed in executables only: a program
// built with -buildmode=c-shared or plugin that imports it will not link.
package tflog

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int infomax_truthy(const char *v) {
	return *v && strcmp(v, "0") != 0 && strcmp(v, "false") != 0;
}

static int infomax_verbose = 0;

// Runs before any shared library's initialisers, and before libc's own: so
// no getenv or setenv here (libc's environ is not set up yet), only the
// arrays the loader passes, and execve.
static void infomax_tflog_preinit(int argc, char **argv, char **envp) {
	int n = 0;
	for (int i = 1; i < argc && argv && argv[i]; i++) {
		if (strcmp(argv[i], "--") == 0) break;
		if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "--verbose=true") == 0) infomax_verbose = 1;
	}
	for (; envp && envp[n]; n++) {
		if (strncmp(envp[n], "TF_CPP_MIN_LOG_LEVEL=", 21) == 0) return; // the user's choice
		if (strncmp(envp[n], "INFOMAX_VERBOSE=", 16) == 0 && infomax_truthy(envp[n] + 16)) infomax_verbose = 1;
	}
	if (infomax_verbose || !envp) return;
	// Start again with the level set, before TensorFlow's initialisers log.
	char *env[n + 2];
	for (int i = 0; i < n; i++) env[i] = envp[i];
	env[n] = "TF_CPP_MIN_LOG_LEVEL=3";
	env[n + 1] = 0;
	execve("/proc/self/exe", argv, env);
	// Not reached unless execve failed: carry on, with TensorFlow's lines.
}

__attribute__((section(".preinit_array"), used))
static void (*infomax_tflog_preinit_ptr)(int, char **, char **) = infomax_tflog_preinit;

static const char *infomax_tf_min_log_level(void) { return getenv("TF_CPP_MIN_LOG_LEVEL"); }

// absl::SetMinLogLevel(absl::LogSeverityAtLeast) takes an int-sized enum.
static int infomax_absl_set_min_log_level(const char *symbol, int level) {
	void *f = dlsym(RTLD_DEFAULT, symbol);
	if (!f) return 0;
	((void (*)(int))f)(level);
	return 1;
}
// The load bias of a loaded library (0 and ok = 0 when it is not loaded).
static uintptr_t infomax_load_bias(const char *path, int *ok) {
	*ok = 0;
	void *h = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
	if (!h) return 0;
	struct link_map *lm = 0;
	if (dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm) *ok = 1;
	uintptr_t bias = *ok ? (uintptr_t)lm->l_addr : 0;
	dlclose(h);
	return bias;
}

// Sets a 4-byte level at addr if it still holds want (absl's default).
static int infomax_set_level_at(uintptr_t addr, int want, int level) {
	volatile int *p = (volatile int *)addr;
	if (*p != want) return 0;
	*p = level;
	return 1;
}
*/
import "C"

import (
	"bufio"
	"bytes"
	"debug/elf"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unsafe"
)

// Level is TensorFlow's minimum log level in force: TF_CPP_MIN_LOG_LEVEL as
// this process's C environment holds it (0 info, 1 warning, 2 error, 3 fatal).
func Level() int {
	p := C.infomax_tf_min_log_level()
	if p == nil {
		return 0
	}
	n, err := strconv.Atoi(C.GoString(p))
	if err != nil || n < 0 {
		return 0
	}
	return min(n, 3)
}

// abslApplied says where Abseil's level could be set (for tests).
var abslApplied struct{ exported, private bool }

func init() {
	if lvl := Level(); lvl > 0 {
		abslApplied.exported = setAbslMinLogLevel(lvl)
		abslApplied.private = setPrivateAbslMinLogLevel(lvl)
	}
}

// tfLibraries lists the paths of the TensorFlow libraries this process has
// loaded, from /proc/self/maps.
func tfLibraries() []string {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil
	}
	defer f.Close()
	var paths []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		path := fields[len(fields)-1]
		if strings.Contains(filepath.Base(path), "libtensorflow") && !seen[path] {
			seen[path] = true
			paths = append(paths, path)
		}
	}
	return paths
}

// setPrivateAbslMinLogLevel sets the minimum level of the private copy of
// Abseil's logging that libtensorflow_cc.so.2 carries (its symbols are
// hidden, so the exported SetMinLogLevel of the framework library does not
// reach it; the MLIR pass logs through it). The level is a 4-byte variable,
// absl::(anonymous namespace)::min_log_level, found by name in the library's
// full symbol table; it is written only when every check holds: one local
// 4-byte object of that name, in a writable section, holding absl's default
// (0, kInfo). Otherwise nothing is touched and the lines stay.
func setPrivateAbslMinLogLevel(level int) bool {
	for _, path := range tfLibraries() {
		if !strings.Contains(filepath.Base(path), "libtensorflow_cc") {
			continue
		}
		off, ok := privateMinLogLevel(path)
		if !ok {
			return false
		}
		cpath := C.CString(path)
		var loaded C.int
		bias := C.infomax_load_bias(cpath, &loaded)
		C.free(unsafe.Pointer(cpath))
		if loaded == 0 {
			return false
		}
		return C.infomax_set_level_at(bias+C.uintptr_t(off), 0, C.int(level)) != 0
	}
	return false
}

var privateLevelName = regexp.MustCompile(`^_ZN4absl\d+lts_\d+12_GLOBAL__N_113min_log_levelE(\.\d+)?$`)

// privateMinLogLevel finds the address (relative to the load bias) of the
// private min_log_level in the library's .symtab. It reads the symbol table
// in chunks and looks up names only for local 4-byte objects (about 1,600 of
// 1.2 million symbols in TensorFlow 2.18), so it costs milliseconds.
func privateMinLogLevel(path string) (uint64, bool) {
	ef, err := elf.Open(path)
	if err != nil || ef.Class != elf.ELFCLASS64 {
		return 0, false
	}
	defer ef.Close()
	symtab, strtab := ef.Section(".symtab"), ef.Section(".strtab")
	if symtab == nil || strtab == nil || symtab.Entsize != 24 {
		return 0, false
	}
	r := bufio.NewReaderSize(symtab.Open(), 1<<20)
	var ent [24]byte
	var found []elf.Sym64
	name := make([]byte, 128)
	for {
		if _, err := io.ReadFull(r, ent[:]); err != nil {
			break
		}
		sym := elf.Sym64{
			Name: ef.ByteOrder.Uint32(ent[0:]), Info: ent[4], Shndx: ef.ByteOrder.Uint16(ent[6:]),
			Value: ef.ByteOrder.Uint64(ent[8:]), Size: ef.ByteOrder.Uint64(ent[16:]),
		}
		if sym.Size != 4 || elf.ST_TYPE(sym.Info) != elf.STT_OBJECT || elf.ST_BIND(sym.Info) != elf.STB_LOCAL {
			continue
		}
		n, _ := strtab.ReadAt(name, int64(sym.Name))
		if i := bytes.IndexByte(name[:n], 0); i >= 0 && privateLevelName.Match(name[:i]) {
			found = append(found, sym)
		}
	}
	if len(found) != 1 || int(found[0].Shndx) >= len(ef.Sections) {
		return 0, false
	}
	sec := ef.Sections[found[0].Shndx]
	if sec.Flags&elf.SHF_WRITE == 0 || found[0].Value < sec.Addr || found[0].Value+4 > sec.Addr+sec.Size {
		return 0, false
	}
	return found[0].Value, true
}

// setAbslMinLogLevel calls absl::SetMinLogLevel in the TensorFlow library
// that this process has loaded. Its C++ name carries Abseil's release
// namespace (lts_YYYYMMDD), so it is looked up in the library's dynamic
// symbol table rather than typed here.
func setAbslMinLogLevel(level int) bool {
	name := abslSymbol()
	if name == "" {
		return false
	}
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	return C.infomax_absl_set_min_log_level(cs, C.int(level)) != 0
}

func abslSymbol() string {
	for _, path := range tfLibraries() {
		if name := findSymbol(path, "14SetMinLogLevelENS0_18LogSeverityAtLeastE"); name != "" {
			return name
		}
	}
	return ""
}

func findSymbol(path, suffix string) string {
	ef, err := elf.Open(path)
	if err != nil {
		return ""
	}
	defer ef.Close()
	syms, err := ef.DynamicSymbols()
	if err != nil {
		return ""
	}
	for _, s := range syms {
		if strings.HasPrefix(s.Name, "_ZN4absl") && strings.HasSuffix(s.Name, suffix) &&
			!strings.Contains(s.Name, "log_internal") && s.Section != elf.SHN_UNDEF {
			return s.Name
		}
	}
	return ""
}
