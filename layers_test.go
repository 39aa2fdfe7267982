package infomax_test

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/infomax/infomax/"

// layers is the structure docs/design.md draws, bottom up: a package may
// import only packages of lower layers. The fixtures are for tests alone.
var layers = [][]string{
	{"internal/cpuinfo", "internal/fsutil", "internal/hnsw", "internal/memstat", "internal/offheap", "internal/tfutil", "tboard", "tflog", "tfonednn"},
	{"internal/store"},
	{"buckets"},
	{"data", "checkpoint", "graph", "internal/npy"},
	{"config", "knn"},
	{"exporter"},
	{"run"},
	{"encoder", "search", "eval"},
	{"report"},
	{"runeval"},
	{"train"},
	{"runner", "embed"},
}

var fixtures = []string{"testkit/hostile", "testkit/testmodel", "testkit/fullsize", "testkit/brute", "testkit/emulators"}

func layerOf(pkg string) int {
	for i, l := range layers {
		if slices.Contains(l, pkg) {
			return i
		}
	}
	return -1
}

// goFiles lists the package folders of the module with their non-test Go
// files.
func goFiles(t *testing.T) map[string][]string {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{.Dir}}|{{join .GoFiles \",\"}}|{{join .CgoFiles \",\"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	files := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		pkg := strings.TrimPrefix(f[0], module)
		if pkg == strings.TrimSuffix(module, "/") {
			continue
		}
		for _, names := range f[2:] {
			for _, n := range strings.Split(names, ",") {
				if n != "" {
					files[pkg] = append(files[pkg], filepath.Join(f[1], n))
				}
			}
		}
	}
	return files
}

func imports(t *testing.T, path string) (pkgName string, imps []string) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		imps = append(imps, p)
	}
	return f.Name.Name, imps
}

// The layering of docs/design.md holds in the code: every package has a
// layer, imports only lower ones, and no production file imports a fixture.
func TestLayering(t *testing.T) {
	for pkg, paths := range goFiles(t) {
		if slices.Contains(fixtures, pkg) {
			continue
		}
		own := layerOf(pkg)
		if own < 0 {
			t.Errorf("package %s has no layer in layers_test.go (and docs/design.md)", pkg)
			continue
		}
		for _, p := range paths {
			_, imps := imports(t, p)
			for _, imp := range imps {
				dep, ok := strings.CutPrefix(imp, module)
				if !ok {
					continue
				}
				if slices.Contains(fixtures, dep) {
					t.Errorf("%s imports the test fixture %s", p, dep)
				} else if l := layerOf(dep); l >= own {
					t.Errorf("%s (layer %d) imports %s (layer %d): a package may import only lower layers", p, own, dep, l)
				}
			}
		}
	}
}

// No library package changes the process it is imported into: no forced
// garbage collection or memory policy, no re-execution; packages tflog and
// tfonednn, which re-execute to quiet TensorFlow and to turn its oneDNN
// kernels on, and buckets, which links the cloud SDKs in, are imported by
// main packages only (and test fixtures). Every
// TensorFlow session is made in package graph, from graph.Options (threads,
// device), and the CLI does not touch TensorFlow itself.
func TestNoProcessSideEffectsAndOneSessionFactory(t *testing.T) {
	forbidden := []string{"runtime.GC(", "debug.SetGCPercent(", "debug.SetMemoryLimit(", "syscall.Exec(", "execve(", ".preinit_array"}
	for pkg, paths := range goFiles(t) {
		for _, p := range paths {
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			src := string(raw)
			name, imps := imports(t, p)
			if pkg != "tflog" && pkg != "tfonednn" {
				for _, f := range forbidden {
					if strings.Contains(src, f) {
						t.Errorf("%s: %s in a library package", p, f)
					}
				}
			}
			for _, opt := range []string{"tflog", "tfonednn", "buckets"} {
				if slices.Contains(imps, module+opt) && name != "main" && !slices.Contains(fixtures, pkg) {
					t.Errorf("%s: package %s imports %s, which only main packages may", p, name, opt)
				}
			}
			if pkg != "graph" && (strings.Contains(src, "tf.NewSession(") || strings.Contains(src, "tf.LoadSavedModel(")) {
				t.Errorf("%s: a TensorFlow session made outside package graph (use graph.NewSession or graph.LoadSaved with the run's options)", p)
			}
			if pkg == "runner" && (slices.Contains(imps, "github.com/wamuir/graft/tensorflow") || slices.Contains(imps, module+"graph")) {
				t.Errorf("%s: the CLI touches TensorFlow itself; it should call the library", p)
			}
		}
	}
}

// A program that imports a library package links neither the AWS nor the
// Google Cloud SDK: the object stores come with package buckets, which only
// the commands import.
func TestLibrariesLinkNoCloudSDK(t *testing.T) {
	for _, pkg := range []string{"encoder", "search", "run", "config", "data", "eval", "knn", "graph"} {
		out, err := exec.Command("go", "list", "-deps", "./"+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps ./%s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, "github.com/aws/") || strings.HasPrefix(dep, "cloud.google.com/") || strings.HasPrefix(dep, "google.golang.org/api") {
				t.Errorf("a program importing only %s links %s: import the object stores in package buckets alone", pkg, dep)
				break
			}
		}
	}
	out, err := exec.Command("go", "list", "-deps", "./runner").Output()
	if err != nil || !strings.Contains(string(out), "\ncloud.google.com/go/storage\n") || !strings.Contains(string(out), "github.com/aws/aws-sdk-go-v2/service/s3") {
		t.Errorf("runner does not link both object stores (package buckets): %v", err)
	}
}
