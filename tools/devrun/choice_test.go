package main

import (
	"testing"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
)

// make run takes a Redis only when told to: an unset REDIS_URL is the
// embedded store even when a Redis answers on localhost:6379.
func TestRedisChoice(t *testing.T) {
	for _, tc := range []struct {
		name    string
		environ map[string]string
		want    redisSource
	}{
		{name: "nothing set", environ: map[string]string{}, want: redisEmbedded},
		{name: "REDIS_URL blank", environ: map[string]string{"REDIS_URL": "  "}, want: redisEmbedded},
		{name: "localhost chosen", environ: map[string]string{"REDIS_URL": "redis://localhost:6379"}, want: redisConfigured},
		{name: "sentinels", environ: map[string]string{"REDIS_SENTINEL_ADDRS": "127.0.0.1:26379", "REDIS_MASTER_NAME": "m"}, want: redisConfigured},
		{name: "forced embedded", environ: map[string]string{"REDIS_URL": "redis://localhost:6379", "DEV_EMBEDDED_REDIS": "true"}, want: redisEmbedded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api, err := config.LoadAPI(tc.environ)
			if err != nil {
				t.Fatal(err)
			}
			dev, err := config.LoadDev(tc.environ)
			if err != nil {
				t.Fatal(err)
			}
			if got := redisChoice(api.Redis, dev.Embedded); got != tc.want {
				t.Errorf("redisChoice = %v, want %v", got, tc.want)
			}
		})
	}
}
