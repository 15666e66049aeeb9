package sweep

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
)

// TestRoutesAreInTheContract: the sweeper serves exactly the routes
// openapi.yaml documents for it.
func TestRoutesAreInTheContract(t *testing.T) {
	got := (&Service{}).Handler().Patterns()
	slices.Sort(got)
	if diff := cmp.Diff(testkit.ContractRoutes(t, "sweeper"), got); diff != "" {
		t.Errorf("openapi.yaml's sweeper routes (-) vs the routes the sweeper registers (+): document a + line in openapi.yaml "+
			"(with the sweeper in the path's servers), or remove a - line:\n%s", diff)
	}
}
