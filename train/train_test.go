package train

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/config"
)

// With no --config, train takes the default config from the project root.
func TestDefaultConfig(t *testing.T) {
	var out bytes.Buffer
	file, err := configFile(Options{}, &out)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs("..")
	if want := filepath.Join(root, DefaultConfig); file != want {
		t.Errorf("default config %s, want %s", file, want)
	}
	if !strings.Contains(out.String(), "training the default") {
		t.Errorf("no word of the default in %q", out.String())
	}
	if _, err := config.Load(file, nil); err != nil {
		t.Errorf("the default config does not load: %v", err)
	}
}
