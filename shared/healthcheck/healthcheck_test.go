package healthcheck

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestGet(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			w.WriteHeader(http.StatusOK)
		case "/moved":
			http.Redirect(w, r, "/health", http.StatusFound)
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	// A port nothing listens on: bind one, then close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/health"
	l.Close()

	for name, tc := range map[string]struct {
		url     string
		wantErr string
	}{
		"ok":          {url: srv.URL + "/health"},
		"503":         {url: srv.URL + "/ready", wantErr: "status 503"},
		"redirect":    {url: srv.URL + "/moved", wantErr: "status 302"},
		"nothing":     {url: closed, wantErr: "refused"},
		"not a url":   {url: "http://[::1", wantErr: "healthcheck"},
		"slow server": {url: srv.URL + "/slow", wantErr: "deadline exceeded"},
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			err := Get(context.Background(), tc.url)
			if took := time.Since(start); took > Timeout+time.Second {
				t.Errorf("took %s, want at most about %s", took, Timeout)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("err = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
