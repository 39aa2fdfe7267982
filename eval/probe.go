package eval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	tf "github.com/wamuir/graft/tensorflow"

	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/tfutil"
	"github.com/infomax/infomax/knn"
)

// ProbeSettings set a probe's training.
type ProbeSettings struct {
	Epochs    int
	BatchSize int
	Seed      int64
	Session   graph.Options // threads and device, as the run's other sessions
}

// ProbeResult is a probe's test top-1 accuracy.
type ProbeResult struct {
	Accuracy      float64 `json:"accuracy"`
	TrainAccuracy float64 `json:"train_accuracy"`
	FinalLoss     float64 `json:"final_loss"`
	Epochs        int     `json:"epochs"`
	Seconds       float64 `json:"seconds"`
}

// TrainProbe trains a probe on frozen training features and reports its
// accuracy on the test features: the linear probe (multinomial logistic
// regression) or the MLP probe, whichever dir holds. The model and its
// Adam step are a SavedModel written by `python -m pyexport.probe` (dir);
// Go standardises the features (training mean and deviation per dimension)
// as it assembles each batch, shuffles and feeds mini-batches: the features
// are read row by row (knn.Rows), never copied whole.
func TrainProbe(dir string, train knn.Rows, trainLabels []int, test knn.Rows, testLabels []int, s ProbeSettings) (*ProbeResult, error) {
	start := time.Now()
	p, err := loadProbe(dir, s.Session)
	if err != nil {
		return nil, fmt.Errorf("the probe's graph %s: %w", dir, err)
	}
	defer p.saved.Session.Close()
	mean, std := moments(train)
	trainZ, testZ := standardized{train, mean, std}, standardized{test, mean, std}
	res := &ProbeResult{Epochs: s.Epochs}
	if res.FinalLoss, err = p.fit(trainZ, trainLabels, s); err != nil {
		return nil, fmt.Errorf("training the probe of %s on %d rows: %w", dir, train.Len(), err)
	}
	if res.Accuracy, err = p.accuracy(testZ, testLabels); err != nil {
		return nil, fmt.Errorf("testing the probe of %s on %d rows: %w", dir, test.Len(), err)
	}
	if res.TrainAccuracy, err = p.accuracy(trainZ, trainLabels); err != nil {
		return nil, fmt.Errorf("the probe of %s on its %d training rows: %w", dir, train.Len(), err)
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// probe is the probe's SavedModel with its tensors, found through its
// signatures.
type probe struct {
	saved                  *tf.SavedModel
	x, y, loss, px, pclass tf.Output
}

func loadProbe(dir string, opts graph.Options) (*probe, error) {
	saved, err := graph.LoadSaved(dir, []string{"serve"}, opts)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", dir, err)
	}
	p := &probe{saved: saved}
	for _, r := range []struct {
		dst      *tf.Output
		sig, key string
		input    bool
	}{{&p.x, "train_step", "x", true}, {&p.y, "train_step", "y", true}, {&p.loss, "train_step", "loss", false}, {&p.px, "predict", "x", true}, {&p.pclass, "predict", "class", false}} {
		info, ok := saved.Signatures[r.sig].Outputs[r.key]
		if r.input {
			info, ok = saved.Signatures[r.sig].Inputs[r.key]
		}
		if !ok {
			saved.Session.Close()
			return nil, fmt.Errorf("probe %s: signature %s has no %s", dir, r.sig, r.key)
		}
		if *r.dst, err = tfutil.Output(saved.Graph, info.Name); err != nil {
			saved.Session.Close()
			return nil, err
		}
	}
	return p, nil
}

// fit runs s.Epochs epochs of seeded minibatches (the last partial batch of
// an epoch dropped) and returns the last batch's loss.
func (p *probe) fit(train knn.Rows, labels []int, s ProbeSettings) (float64, error) {
	d, n := train.Width(), train.Len()
	rng := rand.New(rand.NewPCG(uint64(s.Seed), 0x9e0be))
	xb := make([]float32, s.BatchSize*d)
	yb := make([]int32, s.BatchSize)
	var last float64
	for epoch := 0; epoch < s.Epochs; epoch++ {
		perm := rng.Perm(n)
		for i := 0; i+s.BatchSize <= n; i += s.BatchSize {
			for j, k := range perm[i : i+s.BatchSize] {
				train.Row(k, xb[j*d:(j+1)*d])
				yb[j] = int32(labels[k])
			}
			xt, err := tfutil.FromFloat32s(xb, int64(s.BatchSize), int64(d))
			if err != nil {
				return 0, err
			}
			yt, err := tf.NewTensor(yb)
			if err != nil {
				return 0, err
			}
			out, err := p.saved.Session.Run(map[tf.Output]*tf.Tensor{p.x: xt, p.y: yt}, []tf.Output{p.loss}, nil)
			tfutil.Free(xt, yt)
			if err != nil {
				return 0, fmt.Errorf("probe step: %w", err)
			}
			last = float64(out[0].Value().(float32))
			tfutil.Free(out...)
		}
	}
	return last, nil
}

// accuracy is the share of f's rows whose predicted class is their label,
// predicted a block of at most 4,096 rows (and 64 MiB) at a time.
func (p *probe) accuracy(f knn.Rows, labels []int) (float64, error) {
	d, correct := f.Width(), 0
	chunk := max(1, min(4096, (64<<20)/(4*d)))
	buf := make([]float32, chunk*d)
	for i := 0; i < f.Len(); i += chunk {
		j := min(i+chunk, f.Len())
		for k := i; k < j; k++ {
			f.Row(k, buf[(k-i)*d:(k-i+1)*d])
		}
		xt, err := tfutil.FromFloat32s(buf[:(j-i)*d], int64(j-i), int64(d))
		if err != nil {
			return 0, err
		}
		out, err := p.saved.Session.Run(map[tf.Output]*tf.Tensor{p.px: xt}, []tf.Output{p.pclass}, nil)
		tfutil.Free(xt)
		if err != nil {
			return 0, fmt.Errorf("probe predict: %w", err)
		}
		classes, err := tfutil.Int32s(out[0])
		tfutil.Free(out...)
		if err != nil {
			return 0, fmt.Errorf("probe predict: %w", err)
		}
		for k, c := range classes {
			if int(c) == labels[i+k] {
				correct++
			}
		}
	}
	return float64(correct) / float64(f.Len()), nil
}

// moments returns each dimension's mean and standard deviation (1 where it is 0).
func moments(f knn.Rows) (mean, std []float64) {
	d := f.Width()
	mean, std = make([]float64, d), make([]float64, d)
	row := make([]float32, d)
	for i := 0; i < f.Len(); i++ {
		f.Row(i, row)
		for j, v := range row {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(f.Len())
	}
	for i := 0; i < f.Len(); i++ {
		f.Row(i, row)
		for j, v := range row {
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

// standardized are rows with each dimension's training mean taken away and
// divided by its deviation, made as they are read.
type standardized struct {
	r         knn.Rows
	mean, std []float64
}

func (s standardized) Len() int   { return s.r.Len() }
func (s standardized) Width() int { return s.r.Width() }
func (s standardized) Row(i int, dst []float32) {
	s.r.Row(i, dst)
	for j, v := range dst {
		dst[j] = float32((float64(v) - s.mean[j]) / s.std[j])
	}
}
