package sim

import (
	"os"

	"github.com/yggdrasil-cp/yggdrasil/tools/ygg-sim/internal/stack"
)

func sampleSelf() (stack.ProcSample, error) { return stack.Sample(os.Getpid()) }

// GeneratorUsage is the simulator's own CPU and memory: with the controller
// on the same cores, a generator near their limit is the first suspect.
type GeneratorUsage struct {
	Ramp    stack.Usage `json:"ramp"`
	Measure stack.Usage `json:"measure"`
}

func generatorUsage(start, measure, end stack.ProcSample) GeneratorUsage {
	return GeneratorUsage{Ramp: stack.Between(start, measure), Measure: stack.Between(measure, end)}
}
