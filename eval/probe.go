package eval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	tf "github.com/wamuir/graft/tensorflow"

	"github.com/infomax/infomax/internal/tfutil"
)

// ProbeSettings set the linear probe's training.
type ProbeSettings struct {
	Epochs    int
	BatchSize int
	Seed      int64
}

// ProbeResult is a linear probe's test top-1 accuracy.
type ProbeResult struct {
	Accuracy      float64 `json:"accuracy"`
	TrainAccuracy float64 `json:"train_accuracy"`
	FinalLoss     float64 `json:"final_loss"`
	Epochs        int     `json:"epochs"`
	Seconds       float64 `json:"seconds"`
}

// LinearProbe trains multinomial logistic regression on frozen training
// features and reports its accuracy on the test features. The model and its
// Adam step are a SavedModel written by `python -m pyexport.probe` (dir);
// Go standardises the features (training mean and deviation per dimension),
// shuffles and feeds mini-batches.
func LinearProbe(dir string, train Features, trainLabels []int, test Features, testLabels []int, s ProbeSettings) (*ProbeResult, error) {
	start := time.Now()
	saved, err := tf.LoadSavedModel(dir, []string{"serve"}, nil)
	if err != nil {
		return nil, fmt.Errorf("linear probe %s: %w", dir, err)
	}
	defer saved.Session.Close()
	op := func(sig, key string, input bool) (tf.Output, error) {
		info, ok := saved.Signatures[sig].Outputs[key]
		if input {
			info, ok = saved.Signatures[sig].Inputs[key]
		}
		if !ok {
			return tf.Output{}, fmt.Errorf("linear probe %s: signature %s has no %s", dir, sig, key)
		}
		return tfutil.Output(saved.Graph, info.Name)
	}
	var x, y, loss, px, pclass tf.Output
	for _, r := range []struct {
		dst      *tf.Output
		sig, key string
		input    bool
	}{{&x, "train_step", "x", true}, {&y, "train_step", "y", true}, {&loss, "train_step", "loss", false}, {&px, "predict", "x", true}, {&pclass, "predict", "class", false}} {
		if *r.dst, err = op(r.sig, r.key, r.input); err != nil {
			return nil, err
		}
	}

	mean, std := moments(train)
	trainZ, testZ := standardize(train, mean, std), standardize(test, mean, std)
	d := train.Dim
	n := train.Len()
	rng := rand.New(rand.NewPCG(uint64(s.Seed), 0x9e0be))
	xb := make([]float32, s.BatchSize*d)
	yb := make([]int32, s.BatchSize)
	var last float64
	for epoch := 0; epoch < s.Epochs; epoch++ {
		perm := rng.Perm(n)
		for i := 0; i+s.BatchSize <= n; i += s.BatchSize {
			for j, p := range perm[i : i+s.BatchSize] {
				copy(xb[j*d:(j+1)*d], trainZ.Data[p*d:(p+1)*d])
				yb[j] = int32(trainLabels[p])
			}
			xt, err := tfutil.FromFloat32s(xb, int64(s.BatchSize), int64(d))
			if err != nil {
				return nil, err
			}
			yt, err := tf.NewTensor(yb)
			if err != nil {
				return nil, err
			}
			out, err := saved.Session.Run(map[tf.Output]*tf.Tensor{x: xt, y: yt}, []tf.Output{loss}, nil)
			if err != nil {
				return nil, fmt.Errorf("linear probe step: %w", err)
			}
			last = float64(out[0].Value().(float32))
		}
	}
	accuracy := func(f Features, labels []int) (float64, error) {
		correct := 0
		for i := 0; i < f.Len(); i += 4096 {
			j := min(i+4096, f.Len())
			xt, err := tfutil.FromFloat32s(f.Data[i*d:j*d], int64(j-i), int64(d))
			if err != nil {
				return 0, err
			}
			out, err := saved.Session.Run(map[tf.Output]*tf.Tensor{px: xt}, []tf.Output{pclass}, nil)
			if err != nil {
				return 0, fmt.Errorf("linear probe predict: %w", err)
			}
			for k, c := range out[0].Value().([]int32) {
				if int(c) == labels[i+k] {
					correct++
				}
			}
		}
		return float64(correct) / float64(f.Len()), nil
	}
	res := &ProbeResult{Epochs: s.Epochs, FinalLoss: last}
	if res.Accuracy, err = accuracy(testZ, testLabels); err != nil {
		return nil, err
	}
	if res.TrainAccuracy, err = accuracy(trainZ, trainLabels); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// moments returns each dimension's mean and standard deviation (1 where it is 0).
func moments(f Features) (mean, std []float64) {
	d := f.Dim
	mean, std = make([]float64, d), make([]float64, d)
	for i := 0; i < f.Len(); i++ {
		for j, v := range f.Data[i*d : (i+1)*d] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(f.Len())
	}
	for i := 0; i < f.Len(); i++ {
		for j, v := range f.Data[i*d : (i+1)*d] {
			dv := float64(v) - mean[j]
			std[j] += dv * dv
		}
	}
	for j := range std {
		std[j] = math.Sqrt(std[j] / float64(f.Len()))
		if std[j] == 0 {
			std[j] = 1
		}
	}
	return mean, std
}

func standardize(f Features, mean, std []float64) Features {
	out := Features{Data: make([]float32, len(f.Data)), Dim: f.Dim}
	for i, v := range f.Data {
		j := i % f.Dim
		out.Data[i] = float32((float64(v) - mean[j]) / std[j])
	}
	return out
}
