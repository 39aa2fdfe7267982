package graph

import (
	"errors"
	"testing"
)

// A failed run's message loses TensorFlow's node trace and its hint about
// out-of-memory tensors, except when memory is what ran out.
func TestRunErrorDropsTensorFlowsNoise(t *testing.T) {
	full := errors.New("/r/ckpt-000020_temp/part-0.data; No space left on device\n\t [[{{function_node __inference__traced_save_8778}}{{node SaveV2}}]]\nHint: If you want to see a list of allocated tensors when OOM happens, add report_tensor_allocations_upon_oom to RunOptions for current allocation info.")
	if got, want := runError(full).Error(), "/r/ckpt-000020_temp/part-0.data; No space left on device"; got != want {
		t.Errorf("full disk: %q, want %q", got, want)
	}
	oom := errors.New("OOM when allocating tensor with shape[1024,50000]\n\t [[{{node MatMul}}]]\nHint: If you want to see a list of allocated tensors when OOM happens, add report_tensor_allocations_upon_oom to RunOptions for current allocation info.")
	if got := runError(oom).Error(); got != "OOM when allocating tensor with shape[1024,50000]\nHint: If you want to see a list of allocated tensors when OOM happens, add report_tensor_allocations_upon_oom to RunOptions for current allocation info." {
		t.Errorf("out of memory: %q", got)
	}
}
