package encoder_test

import (
	"context"
	"encoding/json"
	"image"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/checkpoint"
	"github.com/infomax/infomax/encoder"
	"github.com/infomax/infomax/internal/store"
	"github.com/infomax/infomax/testkit/emulators"
	"github.com/infomax/infomax/testkit/testmodel"
)

// encoder.Load of a run folder in S3 and in GCS (the stores' real APIs,
// in-process), from an unrelated working directory: the features of the
// local folder, bit for bit, and the URL as the encoder's Run. A second
// load of the same checkpoint downloads nothing (it works with the
// bucket's model gone); a new latest.json is a new copy; a latest.json
// pointing at a checkpoint the bucket does not hold is an error naming
// both.
func TestLoadARunFromABucket(t *testing.T) {
	emulators.Start(t, "runs")
	ctx := context.Background()
	runDir, err := testmodel.Run(filepath.Join(t.TempDir(), "run"))
	if err != nil {
		t.Fatal(err)
	}
	local, err := encoder.Load(ctx, runDir)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	imgs := []image.Image{grey(1), grey(2), grey(3)}
	want, err := local.EncodeImages(ctx, imgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("INFOMAX_CACHE", t.TempDir())
	t.Chdir(t.TempDir())
	for _, url := range []string{"s3://runs/exp/r1", "gs://runs/exp/r1"} {
		emulators.Upload(t, runDir, url)
		load := func() (*encoder.Encoder, error) { return encoder.Load(ctx, url) }
		enc, err := load()
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		got, err := enc.EncodeImages(ctx, imgs)
		enc.Close()
		if err != nil {
			t.Fatal(err)
		}
		same(t, url, got, want)
		if enc.Run != url || enc.Step != local.Step || enc.ConfigHash != local.ConfigHash {
			t.Errorf("%s: run %s, step %d, spec %s", url, enc.Run, enc.Step, enc.ConfigHash)
		}

		// The model gone from the bucket: the cached copy serves.
		if err := store.Remove(ctx, url+"/model/saved_model.pb"); err != nil {
			t.Fatal(err)
		}
		if enc, err := load(); err != nil {
			t.Errorf("%s, second load: %v (it downloaded again?)", url, err)
		} else {
			enc.Close()
		}
		// Another latest.json is another checkpoint: copied anew, and
		// the model's absence now shows.
		latestURL := url + "/checkpoints/" + checkpoint.LatestFile
		raw, err := store.ReadFile(ctx, latestURL, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		var st checkpoint.State
		json.Unmarshal(raw, &st)
		st.Time = "2030-01-01T00:00:00Z"
		raw, _ = json.Marshal(st)
		store.WriteFile(ctx, latestURL, raw)
		if _, err := load(); err == nil || !strings.Contains(err.Error(), "saved_model") {
			t.Errorf("%s, a new latest.json with the model gone: %v", url, err)
		}
		// latest.json pointing at a checkpoint the bucket lacks.
		st.Prefix = checkpoint.Prefix(st.Step + 1000)
		raw, _ = json.Marshal(st)
		store.WriteFile(ctx, latestURL, raw)
		if _, err := load(); err == nil || !strings.Contains(err.Error(), st.Prefix+".index") || !strings.Contains(err.Error(), latestURL) {
			t.Errorf("%s, latest.json naming a missing checkpoint: %v", url, err)
		}
	}
}
