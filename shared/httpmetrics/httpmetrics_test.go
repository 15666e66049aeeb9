package httpmetrics_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/yggdrasil-cp/yggdrasil/shared/httpmetrics"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
)

// TestWrapLabelsByRouteTemplate: requests are counted by the mux pattern's
// path ({id} kept as a template), the status the handler wrote, and
// "unmatched" for a path no route has, whatever the client sent.
func TestWrapLabelsByRouteTemplate(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := httpmetrics.New(reg, "t_")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "missing" {
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	srv := httptest.NewServer(m.Wrap(problem.Mux(mux)))
	defer srv.Close()
	for _, p := range []string{"/items/a", "/items/b", "/items/missing", "/secret-token-in-path"} {
		res, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"GET", "/items/{id}", "200"}, 2},
		{[]string{"GET", "/items/{id}", "404"}, 1},
		{[]string{"GET", httpmetrics.Unmatched, "404"}, 1},
	} {
		got := testutil.ToFloat64(mustCounter(t, reg, c.labels))
		if got != c.want {
			t.Errorf("http_requests_total%v = %v, want %v", c.labels, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(reg, "t_http_requests_total"); n != 3 {
		t.Errorf("%d request series, want 3 (no raw path may become a label)", n)
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, labels []string) prometheus.Collector {
	t.Helper()
	return counterFor{reg: reg, labels: labels}
}

// counterFor collects the one series of t_http_requests_total with labels.
type counterFor struct {
	reg    *prometheus.Registry
	labels []string
}

func (c counterFor) Describe(chan<- *prometheus.Desc) {}

func (c counterFor) Collect(ch chan<- prometheus.Metric) {
	fams, _ := c.reg.Gather()
	for _, f := range fams {
		if f.GetName() != "t_http_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if got["method"] == c.labels[0] && got["route"] == c.labels[1] && got["status"] == c.labels[2] {
				ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("x", "x", nil, nil), prometheus.CounterValue, m.GetCounter().GetValue())
			}
		}
	}
}
