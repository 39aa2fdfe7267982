// Package tfonednn turns TensorFlow's oneDNN kernels on for a program on every x86 CPU.
//
// Package tfonednn turns TensorFlow's oneDNN kernels on for a program on
// every x86 CPU, unless the user set TF_ENABLE_ONEDNN_OPTS. It is an opt-in
// for programs, not a library: import it for its side effect from a main
// package only,
//
//	import _ "github.com/infomax/infomax/tfonednn"
//
// as the project's binaries (runner, embed) do. No library package of the
// project imports it, so a Go program that uses package encoder keeps
// TensorFlow's own choice unless its main imports this package or it starts
// with TF_ENABLE_ONEDNN_OPTS=1 set.
//
// Why: TensorFlow 2.18 turns oneDNN on by itself only on CPUs with
// AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX; elsewhere (an AMD EPYC with
// AVX2 and no AVX-512) it runs its Eigen kernels, and this project's
// CIFAR-10 training step runs about 1.7× slower on them (docs/speed.md: 85
// and 87 images/s against 128, 150 and 156, alternating). On the CPUs where
// TensorFlow turns oneDNN on anyway, importing this package changes nothing.
//
// How: TensorFlow reads the variable before any Go code runs (setting it in
// main is too late: measured), so, as package tflog does for its log level,
// a function in the executable's .preinit_array executes the program again
// (/proc/self/exe, same arguments) with TF_ENABLE_ONEDNN_OPTS=1 added to its
// environment when it is not there: one more dynamic load, not TensorFlow's
// start-up. Child processes (the Python exporter) inherit it.
// TF_ENABLE_ONEDNN_OPTS=0 keeps Eigen's kernels. A .preinit_array is allowed
// in executables only.
package tfonednn

/*
#include <string.h>
#include <unistd.h>

// Runs before any shared library's initialisers and before libc's own: no
// getenv or setenv here, only the arrays the loader passes, and execve.
static void infomax_onednn_preinit(int argc, char **argv, char **envp) {
	int n = 0;
	if (!envp) return;
	for (; envp[n]; n++) {
		if (strncmp(envp[n], "TF_ENABLE_ONEDNN_OPTS=", 22) == 0) return; // set: the user's choice, or done
	}
	char *env[n + 2];
	for (int i = 0; i < n; i++) env[i] = envp[i];
	env[n] = "TF_ENABLE_ONEDNN_OPTS=1";
	env[n + 1] = 0;
	execve("/proc/self/exe", argv, env);
	// Not reached unless execve failed: carry on with TensorFlow's choice.
}

__attribute__((section(".preinit_array"), used))
static void (*infomax_onednn_preinit_ptr)(int, char **, char **) = infomax_onednn_preinit;
*/
import "C"
