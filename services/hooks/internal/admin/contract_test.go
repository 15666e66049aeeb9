package admin_test

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/admin"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
)

// TestRoutesAreInTheContract: the hooks service serves exactly the routes
// openapi.yaml documents for it.
func TestRoutesAreInTheContract(t *testing.T) {
	got := admin.Handler(admin.Config{Registry: prometheus.NewRegistry()}).Patterns()
	slices.Sort(got)
	if diff := cmp.Diff(testkit.ContractRoutes(t, "hooks"), got); diff != "" {
		t.Errorf("openapi.yaml's hooks routes (-) vs the routes the hooks service registers (+): document a + line in openapi.yaml "+
			"(with hooks in the path's servers), or remove a - line:\n%s", diff)
	}
}
