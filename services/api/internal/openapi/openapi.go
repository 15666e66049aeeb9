// Package openapi holds the HTTP contract of the three services,
// openapi.yaml (OpenAPI 3.1), embedded, and its JSON form for the api's
// GET /openapi.json.
//
// The YAML file here is the canonical copy (go:embed cannot reach the
// repository top, where openapi.yaml is a symlink to it). Its tests hold it
// to the code: it must never describe a route, a field or a problem type the
// services do not have.
package openapi

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"go.yaml.in/yaml/v4"
)

//go:embed openapi.yaml
var document []byte

// YAML is the document as written.
func YAML() []byte { return document }

// JSON is the document as JSON, converted once.
var JSON = sync.OnceValues(func() ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(document, &v); err != nil {
		return nil, fmt.Errorf("openapi: parse openapi.yaml: %w", err)
	}
	v, err := jsonable(v)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("openapi: to JSON: %w", err)
	}
	return b, nil
})

// jsonable turns YAML's maps into string-keyed ones; a key that is not a
// string (an unquoted 200) is an error, so the document says "200".
func jsonable(v any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			c, err := jsonable(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			t[k] = c
		}
		return t, nil
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			s, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("openapi: key %v is not a string: quote it", k)
			}
			c, err := jsonable(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s, err)
			}
			out[s] = c
		}
		return out, nil
	case []any:
		for i, e := range t {
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			t[i] = c
		}
		return t, nil
	}
	return v, nil
}
