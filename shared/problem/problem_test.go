package problem_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
)

func TestWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   problem.Problem
		want problem.Problem
	}{
		{"typed", problem.New(409, problem.TypeNoQuarantine, "no quarantine is active"),
			problem.Problem{Type: problem.Base + "no-quarantine", Title: "Conflict", Status: 409, Detail: "no quarantine is active"}},
		{"untyped gets about:blank and a title", problem.Problem{Status: 500},
			problem.Problem{Type: "about:blank", Title: "Internal Server Error", Status: 500}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			problem.Write(rec, tc.in)
			if rec.Code != tc.want.Status || rec.Header().Get("Content-Type") != problem.ContentType {
				t.Fatalf("status %d, content type %q", rec.Code, rec.Header().Get("Content-Type"))
			}
			var got problem.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
	if got := problem.HTTPType(http.StatusTeapot); got != problem.Base+"http-418" {
		t.Errorf("HTTPType(418) = %q", got)
	}
}
