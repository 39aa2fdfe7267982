package infomax_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docs are the project's Markdown files: the README and docs/.
func docs(t *testing.T) []string {
	files, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"README.md"}, files...)
}

// No document shows a path of the machine it was written on (a checkout, a
// home folder, a temporary folder): examples use relative paths or names a
// reader replaces.
func TestDocsHoldNoMachinePaths(t *testing.T) {
	machine := regexp.MustCompile(`(^|[\s"'(=:\x60])(/work/|/root/|/home/|/tmp/|/Users/|/mnt/|/var/folders/)\S*`)
	for _, f := range docs(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(raw), "\n") {
			if m := machine.FindString(line); m != "" {
				t.Errorf("%s:%d: a machine's path %q: write it relative to the project, or as a placeholder", f, i+1, strings.TrimSpace(m))
			}
		}
	}
}

// Every figure in docs/results.md names its command: a section (under a
// heading) that holds a figure names the command that measured it, in a
// table's row or in its text.
func TestEveryResultNamesItsCommand(t *testing.T) {
	raw, err := os.ReadFile("docs/results.md")
	if err != nil {
		t.Fatal(err)
	}
	figure := regexp.MustCompile(`(^|[^\w.])0\.\d{3,4}($|[^\d])`)
	command := regexp.MustCompile(`go run \./|runner (train|eval)|scripts/\w+\.py|\.venv/bin/python|make \w`)
	heading, line, figures, commands := "", 0, 0, 0
	check := func() {
		if figures > 0 && commands == 0 {
			t.Errorf("docs/results.md:%d: %q has %d lines with figures and names no command (go run ./runner …, scripts/….py)", line, heading, figures)
		}
	}
	for i, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "#") {
			check()
			heading, line, figures, commands = l, i+1, 0, 0
		}
		if figure.MatchString(l) {
			figures++
		}
		if command.MatchString(l) {
			commands++
		}
	}
	check()
}

// The README is a manual, not a notebook: at most 300 lines (the figures
// live in docs/results.md, the layout in docs/design.md, the details in
// docs/reference.md).
func TestReadmeIsShort(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), "\n"); n > 300 {
		t.Errorf("README.md has %d lines: at most 300; move details to docs/reference.md and figures to docs/results.md", n)
	}
}
