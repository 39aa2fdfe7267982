package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "run.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadLayers(t *testing.T) {
	p := write(t, "model:\n  z_dim: 64\ntrain:\n  batch_size: 16\n")
	t.Setenv("INFOMAX_TRAIN_EPOCHS", "7")
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	AddFlags(fs)
	if err := fs.Parse([]string{"--train.batch_size", "8", "--loss.alpha", "0"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p, fs)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		key    string
		got    any
		want   any
		source Source
	}{
		{"model.z_dim", c.Model.ZDim, 64, FromFile},
		{"train.batch_size", c.Train.BatchSize, 8, FromFlag},
		{"train.epochs", c.Train.Epochs, 7, FromEnv},
		{"loss.alpha", c.Loss.Alpha, 0.0, FromFlag},
		{"loss.beta", c.Loss.Beta, 1.5, FromDefault},
	}
	for _, ch := range checks {
		if ch.got != ch.want || c.Sources[ch.key] != ch.source {
			t.Errorf("%s = %v from %s, want %v from %s", ch.key, ch.got, c.Sources[ch.key], ch.want, ch.source)
		}
	}
	if c.Name != "run" || c.ExportDir != filepath.Join("exports", "run") {
		t.Errorf("name %q, export dir %q: want both from the file name", c.Name, c.ExportDir)
	}
}

func TestLoadRefusesBadValues(t *testing.T) {
	cases := []struct{ body, want string }{
		{"model:\n  zdim: 3\n", `unknown key "model.zdim" (did you mean "model.z_dim"?)`},
		{"trian:\n  epochs: 3\n", `unknown key "trian" (did you mean "train"?)`},
		{"train:\n  batch_size: 1\n", "train.batch_size = 1: must be at least 2"},
		{"model:\n  z_dim: 0\n", "model.z_dim = 0: must be positive"},
		{"model:\n  z_dim: \"big\"\n", "z_dim"},
		{"model:\n  blocks: 9\n", "model.blocks = 9"},
		{"model:\n  scaling: wide\n", "model.scaling = wide: must be one of"},
		{"loss:\n  objective: mine\n", "loss.objective = mine: unknown objective: known are [seed local_nce local_jsd two_view_nce]"},
		{"model:\n  augment: true\nloss:\n  objective: two_view_nce\n", "model.augment = true: loss.objective two_view_nce augments its two views itself"},
		{"model:\n  crop_min_area: 0.3\n  augment_pad: 0\n", "model.crop_min_area = 0.3: crops the views of a two-view objective ([two_view_nce]), and loss.objective is seed: set model.crop_min_area: 0"},
		{"model:\n  crop_min_area: 0.3\nloss:\n  objective: two_view_nce\n", "model.augment_pad = 4: model.crop_min_area replaces the translation: set model.augment_pad: 0"},
		{"model:\n  crop_min_area: -0.1\n", "model.crop_min_area = -0.1: must be in [0, 1] (0: no crop)"},
		{"loss:\n  local_scales: 3\n", "loss.local_scales = 3: must be 1 (the map C) or 2"},
		{"loss:\n  local_scales: 2\n", "loss.local_scales = 2: adds a second map to a two-view objective's contrast ([two_view_nce]), and loss.objective is seed: set loss.local_scales: 1"},
		{"model:\n  blocks: 1\nloss:\n  local_scales: 2\n  objective: two_view_nce\n", "loss.local_scales = 2: needs the map of the block before the last, and model.blocks is 1"},
		{"model: [1, 2\n", "not valid YAML"},
	}
	for _, c := range cases {
		p := write(t, c.body)
		_, err := Load(p, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: error %v, want it to name %s and contain %q", c.body, err, p, c.want)
		}
	}
	if _, err := Load("/no/such/config.yaml", nil); err == nil || !strings.Contains(err.Error(), "/no/such/config.yaml") {
		t.Errorf("missing file: %v", err)
	}
	// A value of the wrong type: one line naming the file, the key and
	// where the value came from.
	p := write(t, "train:\n  epochs: many\n")
	_, err := Load(p, nil)
	if want := "config " + p + `: 'train.epochs' "many" is not an integer`; err == nil || err.Error() != want {
		t.Errorf("wrong type in the file: %v, want %s", err, want)
	}
	t.Setenv("INFOMAX_MODEL_Z_DIM", "lots")
	p = write(t, "")
	_, err = Load(p, nil)
	if want := "config " + p + `: 'model.z_dim' "lots" is not an integer (from $INFOMAX_MODEL_Z_DIM)`; err == nil || err.Error() != want {
		t.Errorf("bad environment value: %v, want %s", err, want)
	}
}

func TestCheckDataNamesPath(t *testing.T) {
	c := Defaults()
	c.Data.Path = "/nonexistent/data"
	if err := c.CheckData(); err == nil || !strings.Contains(err.Error(), "data.path = /nonexistent/data") {
		t.Errorf("CheckData: %v", err)
	}
}

func TestSpecHashFollowsGraphKeysOnly(t *testing.T) {
	a := Defaults()
	a.Model.Precision = "float32"
	b := a
	b.Train.Epochs = 99
	b.Data.Path = "/elsewhere"
	_, ha := a.SpecJSON()
	_, hb := b.SpecJSON()
	if ha != hb {
		t.Error("schedule and data changed the spec hash")
	}
	b.Loss.Gamma = 0.02
	if _, hc := b.SpecJSON(); hc == ha {
		t.Error("a loss weight did not change the spec hash")
	}
	raw, _ := a.SpecJSON()
	want := `{"model":{"image_size":28,"channels":1,"blocks":3,"z_dim":256,"scaling":"unit_centered","global_pairing":"seed","augment":false,"augment_pad":4,"color_jitter":false},` +
		`"loss":{"alpha":0.5,"beta":1.5,"gamma":0.01,"objective":"seed","temperature":0.1,"head_dim":128},"optimizer":{"learning_rate":0.001},"seed":0}`
	if string(raw) != want {
		t.Errorf("spec\n%s\nwant\n%s", raw, want)
	}
}
