package train

// The kNN monitor (eval.every_epochs): at every that many epochs' end the
// run encodes the kNN bank and the test split with the weights of that step
// and logs the weighted kNN accuracy and what it cost; training then goes
// on. The encoder runs in inference mode, so the training itself (losses,
// weights, batches) is the same with the monitor on or off.

// monitorDue says whether the monitor runs after step: at the end of every
// eval.every_epochs-th epoch, except the run's last step when the final
// evaluation follows (its weighted kNN ends the curve).
func (r *trainer) monitorDue(step, perEpoch, total int64) bool {
	n := int64(r.cfg.Eval.EveryEpochs)
	if n <= 0 || step == 0 || step%perEpoch != 0 || (step/perEpoch)%n != 0 {
		return false
	}
	return step != total || !r.cfg.Eval.AfterTraining
}
