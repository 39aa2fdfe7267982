package train

import "math"

// The learning rate schedule (train.lr_schedule). constant leaves the rate
// in the graph alone: optimizer.learning_rate, lowered only by rollbacks.
// cosine sets it before every step k (1-based) of a run of full steps to
//
//	base · scale · ½(1 + cos(π(k−1)/full))
//
// decaying from optimizer.learning_rate to nearly 0 at the last step; scale
// is train.lr_backoff to the power of the rollbacks so far, kept in
// latest.json, so that a resumed run continues the same curve.

func (r *trainer) scheduled() bool { return r.cfg.Train.LRSchedule == "cosine" }

// scheduleLR sets step k's learning rate under a cosine schedule.
func (r *trainer) scheduleLR(k, full int64) error {
	if !r.scheduled() {
		return nil
	}
	return r.model.SetLearningRate(cosineLR(r.cfg.Optimizer.LearningRate, r.lrScale, k, full))
}

func cosineLR(base, scale float64, k, full int64) float64 {
	return base * scale * 0.5 * (1 + math.Cos(math.Pi*float64(k-1)/float64(full)))
}

// lrScaleField is the scale as latest.json keeps it: omitted when 1.
func lrScaleField(scale float64) float64 {
	if scale == 1 {
		return 0
	}
	return scale
}
