package eval

import (
	"fmt"
	"math"
	"strings"

	"github.com/infomax/infomax/run"
)

// Scores are the figures of one kind of feature.
type Scores struct {
	KNN   *KNNResult   `json:"knn"`
	Probe *ProbeResult `json:"linear_probe,omitempty"`
	// MLP is the Deep InfoMax paper's classifier (MLPHidden hidden units;
	// eval.mlp_probe_epochs), on the features only.
	MLP *ProbeResult `json:"mlp_probe,omitempty"`
	// MLPConv is the same classifier on the encoder's last convolutional
	// feature map (ConvDim = h·w·c values; the paper's "conv" column).
	MLPConv *ProbeResult `json:"mlp_probe_conv,omitempty"`
	ConvDim int          `json:"conv_dim,omitempty"`
	// Conv and ConvAvg are the kNN votes and the probes on that map,
	// flattened (h·w·c values, MLP = MLPConv) and averaged over its
	// positions (c values): encoder's Conv and ConvAvg features.
	Conv    *Scores `json:"conv,omitempty"`
	ConvAvg *Scores `json:"conv_avg,omitempty"`
	// Dim is the features' size (set in Conv and ConvAvg).
	Dim int `json:"dim,omitempty"`
	// BankImages of BankOf training images were the kNN bank and the
	// probe's training set (the raw-pixel baseline samples large data sets;
	// 0: all, in reports from before the field).
	BankImages int `json:"bank_images,omitempty"`
	BankOf     int `json:"bank_of,omitempty"`
}

// Report is report.json: every figure of an evaluation.
type Report struct {
	Run      string `json:"run"`
	Data     string `json:"data"`
	DataPath string `json:"data_path"`
	// Bank is the sharded features the queries (DataPath) were classified
	// against, in an evaluation of embedded features (runner eval --features).
	Bank       string  `json:"bank,omitempty"`
	TrainSize  int     `json:"train_size"`
	TestSize   int     `json:"test_size"`
	Classes    int     `json:"classes"`
	Step       int64   `json:"step"`
	Epoch      float64 `json:"epoch,omitempty"`
	Time       string  `json:"time"`
	Feature    string  `json:"feature"`
	FeatureDim int     `json:"feature_dim"`
	ConfigHash string  `json:"config_hash"`
	// Precision is what the features were computed in (float32 or
	// bfloat16; "": a report from before the key, or features whose
	// manifest did not say).
	Precision string  `json:"precision,omitempty"`
	Model     Scores  `json:"model"`
	Pixels    *Scores `json:"raw_pixels"`
	Files     struct {
		Grids     []string `json:"grids"`
		Features  []string `json:"features"`
		Projector []string `json:"projector,omitempty"`
	} `json:"files"`
	// KNNCurve is the kNN monitor's weighted kNN during training
	// (eval.every_epochs), with this evaluation's as its last point.
	KNNCurve      []run.CurvePoint `json:"knn_curve,omitempty"`
	EncodeSec     float64          `json:"encode_seconds"`
	ImagesPerSec  float64          `json:"encode_images_per_second"`
	KNNSec        float64          `json:"knn_seconds"`
	KNNBlockBytes int64            `json:"knn_block_bytes"` // the largest similarity block held at once
	// Retrievals are what the retrieval grids show (package report draws
	// them; not in report.json, which names the grids' files).
	Retrievals []Retrieval `json:"-"`
}

// Markdown is the short table of report.md.
func (rep *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s: %s, step %d\n\n", rep.Run, rep.Data, rep.Step)
	if rep.Bank != "" {
		fmt.Fprintf(&b, "%d queries (%s) against a bank of %d (%s, the probe's training set), %d classes; features: %s (%d).\n\n",
			rep.TestSize, rep.DataPath, rep.TrainSize, rep.Bank, rep.Classes, rep.Feature, rep.FeatureDim)
	} else {
		fmt.Fprintf(&b, "%d training images (the kNN bank and the probe's training set), %d test images, %d classes; features: %s (%d).\n\n",
			rep.TrainSize, rep.TestSize, rep.Classes, rep.Feature, rep.FeatureDim)
	}
	if rep.Precision != "" {
		fmt.Fprintf(&b, "Computed in %s.\n\n", rep.Precision)
	}
	fmt.Fprintln(&b, "| top-1 accuracy | z_mean | raw pixels |")
	fmt.Fprintln(&b, "|---|---|---|")
	row := func(name string, get func(*Scores) (float64, bool)) {
		m, ok := get(&rep.Model)
		if !ok {
			return
		}
		p := "–"
		if rep.Pixels != nil {
			if v, ok := get(rep.Pixels); ok {
				p = fmt.Sprintf("%.4f", v)
			}
		}
		fmt.Fprintf(&b, "| %s | %.4f | %s |\n", name, m, p)
	}
	k := rep.Model.KNN
	row(fmt.Sprintf("kNN weighted, k = %d, t = %g (cosine)", k.WeightedK, k.Temperature), func(s *Scores) (float64, bool) { return s.KNN.Weighted, true })
	row(fmt.Sprintf("kNN majority, k = %d (cosine)", k.K), func(s *Scores) (float64, bool) { return s.KNN.Majority, true })
	row("1-NN (cosine)", func(s *Scores) (float64, bool) { return s.KNN.Top1NN, true })
	row("1-NN (Euclidean)", func(s *Scores) (float64, bool) { return s.KNN.L2NN1, true })
	row("linear probe", func(s *Scores) (float64, bool) {
		if s.Probe == nil {
			return 0, false
		}
		return s.Probe.Accuracy, true
	})
	row(fmt.Sprintf("MLP probe (%d hidden units)", MLPHidden), func(s *Scores) (float64, bool) {
		if s.MLP == nil {
			return 0, false
		}
		return s.MLP.Accuracy, true
	})
	if c := rep.Model.MLPConv; c != nil {
		fmt.Fprintf(&b, "| MLP probe (%d hidden units) on the last convolutional map (%d values) | %.4f | – |\n", MLPHidden, rep.Model.ConvDim, c.Accuracy)
	}
	if c, a := rep.Model.Conv, rep.Model.ConvAvg; c != nil && a != nil {
		fmt.Fprintf(&b, "\n| top-1 accuracy | z_mean (%d) | conv, flattened (%d) | conv_avg (%d) |\n|---|---|---|---|\n", rep.FeatureDim, c.Dim, a.Dim)
		for _, r := range []struct {
			name string
			get  func(*Scores) float64
		}{
			{"kNN weighted", func(s *Scores) float64 { return s.KNN.Weighted }},
			{"kNN majority", func(s *Scores) float64 { return s.KNN.Majority }},
			{"1-NN (cosine)", func(s *Scores) float64 { return s.KNN.Top1NN }},
			{"1-NN (Euclidean)", func(s *Scores) float64 { return s.KNN.L2NN1 }},
			{"linear probe", func(s *Scores) float64 {
				if s.Probe == nil {
					return math.NaN()
				}
				return s.Probe.Accuracy
			}},
			{fmt.Sprintf("MLP probe (%d hidden units)", MLPHidden), func(s *Scores) float64 {
				if s.MLP == nil {
					return math.NaN()
				}
				return s.MLP.Accuracy
			}},
		} {
			fmt.Fprintf(&b, "| %s | %.4f | %.4f | %.4f |\n", r.name, r.get(&rep.Model), r.get(c), r.get(a))
		}
	}
	if p := rep.Pixels; p != nil && p.BankImages > 0 && p.BankImages < p.BankOf {
		fmt.Fprintf(&b, "\nRaw pixels: a seeded sample of %d of the %d training images as the bank and the probe's training set (eval.raw_pixel_mib).\n",
			p.BankImages, p.BankOf)
	}
	fmt.Fprintln(&b)
	return b.String()
}

// CompareTable puts several reports' figures side by side (an ablation), with
// each data set's raw-pixel figures once.
func CompareTable(reps []*Report) string {
	var b strings.Builder
	fmt.Fprintln(&b, "| run | data | step | kNN weighted | kNN majority | 1-NN cos | 1-NN L2 | linear probe |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|---|")
	line := func(name, dataName string, step string, s *Scores) {
		probe := "–"
		if s.Probe != nil {
			probe = fmt.Sprintf("%.4f", s.Probe.Accuracy)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.4f | %.4f | %.4f | %.4f | %s |\n", name, dataName, step,
			s.KNN.Weighted, s.KNN.Majority, s.KNN.Top1NN, s.KNN.L2NN1, probe)
	}
	seen := map[string]bool{}
	for _, r := range reps {
		line(r.Run, r.Data, fmt.Sprint(r.Step), &r.Model)
		if r.Pixels != nil && !seen[r.DataPath] {
			seen[r.DataPath] = true
			line("raw pixels", r.Data, "–", r.Pixels)
		}
	}
	return b.String()
}
