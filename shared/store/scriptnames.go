package store

import (
	"crypto/sha1"
	"encoding/hex"
	"io/fs"
	"strings"
)

// ScriptNames maps the SHA-1 of every embedded script (what EVALSHA carries)
// to its file name without ".lua" ("heartbeat"), so that tracing can name a
// script call without recording its keys or arguments.
func ScriptNames() map[string]string {
	out := map[string]string{}
	entries, _ := fs.ReadDir(scriptFS, "scripts")
	for _, e := range entries {
		src, err := scriptFS.ReadFile("scripts/" + e.Name())
		if err != nil || !strings.HasSuffix(e.Name(), ".lua") {
			continue
		}
		sum := sha1.Sum(src) // the digest redis.NewScript computes
		out[hex.EncodeToString(sum[:])] = strings.TrimSuffix(e.Name(), ".lua")
	}
	return out
}
