package tboard_test

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"os/exec"
	"strings"
	"testing"

	summarypb "github.com/wamuir/graft/tensorflow/core/framework/summary_go_proto"

	"github.com/infomax/infomax/tboard"
	"github.com/infomax/infomax/testkit/testmodel"
)

func writeSample(t *testing.T) string {
	w, err := tboard.NewWriter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for step := int64(1); step <= 3; step++ {
		if err := w.Scalars(step, map[string]float64{"loss/total": 1 / float64(step), "images_per_sec": 900}); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	png.Encode(&b, image.NewGray(image.Rect(0, 0, 4, 2)))
	if err := w.Image(3, "retrieval/cosine", b.Bytes(), 4, 2, 1); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.Path
}

func TestEventsReadBackWithCRCs(t *testing.T) {
	path := writeSample(t)
	events, err := tboard.ReadEvents(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 5 || events[0].GetFileVersion() != "brain.Event:2" {
		t.Fatalf("%d events, first %v", len(events), events[0])
	}
	var loss []float32
	for _, e := range events[1:4] {
		for _, v := range e.GetSummary().GetValue() {
			if v.Tag == "loss/total" {
				loss = append(loss, v.GetSimpleValue())
			}
		}
	}
	if len(loss) != 3 || loss[0] != 1 || loss[2] != float32(1.0/3) || events[3].Step != 3 {
		t.Errorf("loss scalars %v", loss)
	}
	img := events[4].GetSummary().GetValue()[0].GetValue().(*summarypb.Summary_Value_Image).Image
	if img.Width != 4 || img.Height != 2 || len(img.EncodedImageString) == 0 {
		t.Errorf("image %v", img)
	}

	// One flipped byte in the data breaks its CRC.
	raw, _ := os.ReadFile(path)
	raw[len(raw)-10] ^= 0x40
	os.WriteFile(path, raw, 0o644)
	if _, err := tboard.ReadEvents(path); err == nil || !strings.Contains(err.Error(), "CRC mismatch") {
		t.Errorf("corrupt file: %v", err)
	}
}

// TensorFlow's own reader (which checks the CRCs too) reads the file.
func TestTensorFlowReadsTheEvents(t *testing.T) {
	path := writeSample(t)
	py := testmodel.Python(t)
	script := `import sys, tensorflow as tf
for e in tf.compat.v1.train.summary_iterator(sys.argv[1]):
    for v in e.summary.value:
        print(e.step, v.tag, round(v.simple_value, 4) if v.HasField("simple_value") else "image %dx%d" % (v.image.width, v.image.height))`
	cmd := exec.Command(py, "-c", script, path)
	cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=3")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"1 loss/total 1.0", "3 loss/total 0.3333", "2 images_per_sec 900.0", "3 retrieval/cosine image 4x2"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("TensorFlow read:\n%s\nwant a line %q", out, want)
		}
	}
}
