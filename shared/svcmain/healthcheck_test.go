package svcmain

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

type fakeConfig struct{ port int }

func fakeService(port int, loadErr error) Service[fakeConfig] {
	return Service[fakeConfig]{
		Name: "fake",
		Load: func(map[string]string) (fakeConfig, error) { return fakeConfig{port}, loadErr },
		Port: func(c fakeConfig) int { return c.port },
	}
}

func TestRunHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freePort := l.Addr().(*net.TCPAddr).Port
	l.Close()

	noPort := fakeService(port, nil)
	noPort.Port = nil
	for name, tc := range map[string]struct {
		s          Service[fakeConfig]
		status     int
		wantCode   int
		wantStderr string
	}{
		"healthy":         {s: fakeService(port, nil), status: 200, wantCode: 0},
		"503":             {s: fakeService(port, nil), status: 503, wantCode: 1, wantStderr: "status 503"},
		"nothing listens": {s: fakeService(freePort, nil), status: 200, wantCode: 1, wantStderr: strconv.Itoa(freePort)},
		"bad config":      {s: fakeService(port, errors.New("config: PORT: nope")), status: 200, wantCode: 1, wantStderr: "PORT: nope"},
		"port 0":          {s: fakeService(0, nil), status: 200, wantCode: 1, wantStderr: "PORT is 0"},
		"no port func":    {s: noPort, status: 200, wantCode: 1, wantStderr: "no HTTP port"},
	} {
		t.Run(name, func(t *testing.T) {
			status = tc.status
			var stderr bytes.Buffer
			if code := runHealthcheck(tc.s, nil, &stderr); code != tc.wantCode {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tc.wantCode, stderr.String())
			}
			if tc.wantStderr == "" && stderr.Len() != 0 {
				t.Errorf("printed %q on success, want nothing", stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}
