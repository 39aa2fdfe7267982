package infomax_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Every Go package is named in docs/design.md's layout section: a package
// added without a word there fails this test.
func TestLayoutNamesEveryPackage(t *testing.T) {
	raw, err := os.ReadFile("docs/design.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	start := strings.Index(readme, "## Layout")
	if start < 0 {
		t.Fatal("docs/design.md has no ## Layout section")
	}
	layout := readme[start:]
	if end := strings.Index(layout[3:], "\n## "); end >= 0 {
		layout = layout[:end+3]
	}
	out, err := exec.Command("go", "list", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, "github.com/infomax/infomax"), "/")
		if rel == "" {
			continue
		}
		name := rel + "/"
		if strings.Contains(rel, "/") {
			name = rel // internal/x is listed without a slash
		}
		if !strings.Contains(layout, name) {
			t.Errorf("docs/design.md's layout section does not name %s (package %s)", name, pkg)
		}
	}
}

// Every package's documentation opens with a one-line summary: "Package
// name …" (or "Command name …") as one sentence of at most 100 characters,
// which go doc and pkg.go.dev show first.
func TestEveryPackageOpensWithAOneLineSummary(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{.Name}}|{{.Doc}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.SplitN(line, "|", 3)
		pkg, name, doc := f[0], f[1], f[2]
		if name == "main" {
			name = pkg[strings.LastIndex(pkg, "/")+1:]
		}
		if !strings.HasPrefix(doc, "Package "+name+" ") && !strings.HasPrefix(doc, "Command "+name+" ") || len(doc) > 100 {
			t.Errorf("%s: its documentation opens with %q: want a one-line summary, Package %s …, of at most 100 characters", pkg, doc, name)
		}
	}
}
