package openapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/go-cmp/cmp"

	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/openapi"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// repo is the repository top, from this package's directory.
const repo = "../../../.."

func load(t *testing.T, data []byte) *openapi3.T {
	t.Helper()
	l := openapi3.NewLoader()
	doc, err := l.LoadFromData(data)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return doc
}

func TestDocumentValidates(t *testing.T) {
	doc := load(t, openapi.YAML())
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q: want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml does not validate: %v", err)
	}
}

// TestTopLevelFileIsThisOne: the repository's openapi.yaml is the embedded
// one (a symlink to it).
func TestTopLevelFileIsThisOne(t *testing.T) {
	top, err := os.ReadFile(filepath.Join(repo, "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(top, openapi.YAML()) {
		t.Fatal("openapi.yaml at the repository top differs from services/api/internal/openapi/openapi.yaml: it must be a symlink to it")
	}
}

// TestJSONIsTheYAML: what /openapi.json serves is the same document.
func TestJSONIsTheYAML(t *testing.T) {
	js, err := openapi.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(js) {
		t.Fatal("JSON() is not JSON")
	}
	a, err := json.Marshal(load(t, openapi.YAML()))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(load(t, js))
	if err != nil {
		t.Fatal(err)
	}
	var av, bv any
	_ = json.Unmarshal(a, &av)
	_ = json.Unmarshal(b, &bv)
	if diff := cmp.Diff(av, bv); diff != "" {
		t.Fatalf("JSON and YAML documents differ (-yaml +json):\n%s", diff)
	}
}

// problemConstants reads shared/problem's Type… constants from its source:
// name → URI (each is Base + "suffix").
func problemConstants(t *testing.T) map[string]string {
	t.Helper()
	dir := filepath.Join(repo, "shared", "problem")
	fset := token.NewFileSet()
	out := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if !strings.HasPrefix(n.Name, "Type") || i >= len(vs.Values) {
						continue
					}
					be, ok := vs.Values[i].(*ast.BinaryExpr)
					id, ok2 := be.X.(*ast.Ident)
					lit, ok3 := be.Y.(*ast.BasicLit)
					if !ok || !ok2 || !ok3 || id.Name != "Base" {
						t.Fatalf("problem.%s is not Base + \"...\": teach this test its form", n.Name)
					}
					s, _ := strconv.Unquote(lit.Value)
					out[n.Name] = problem.Base + s
				}
			}
		}
	}
	if out["TypeUnauthorized"] != problem.TypeUnauthorized || out["TypeRunnerDraining"] != problem.TypeRunnerDraining {
		t.Fatalf("reading shared/problem went wrong: %v", out)
	}
	return out
}

// TestProblemTypesAreTheConstants: the ProblemType enum is exactly
// shared/problem's constants, and each x-constants entry names its constant.
func TestProblemTypesAreTheConstants(t *testing.T) {
	doc := load(t, openapi.YAML())
	s := doc.Components.Schemas["ProblemType"].Value
	consts := problemConstants(t)
	var want, got []string
	for _, v := range consts {
		want = append(want, v)
	}
	for _, e := range s.Enum {
		got = append(got, e.(string))
	}
	sort.Strings(want)
	sort.Strings(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ProblemType enum vs shared/problem constants (-constants +openapi.yaml):\n%s", diff)
	}
	named, _ := s.Extensions["x-constants"].(map[string]any)
	for name, uri := range consts {
		e, _ := named[uri].(map[string]any)
		if e == nil || e["constant"] != name {
			t.Errorf("x-constants[%s] should name problem.%s, has %v", uri, name, e)
		}
		if d, _ := e["description"].(string); d == "" {
			t.Errorf("x-constants[%s] has no description", uri)
		}
	}
	if len(named) != len(consts) {
		t.Errorf("x-constants has %d entries, shared/problem %d constants", len(named), len(consts))
	}
}

// wireSchemas names the schema of every exported struct type of shared/wire.
var wireSchemas = map[string]any{
	"SystemResources": wire.SystemResources{}, "PendingUpdate": wire.PendingUpdate{}, "RunnerInfo": wire.RunnerInfo{},
	"RunnerTask": wire.RunnerTask{}, "RegisterRunnerPayload": wire.RegisterRunnerPayload{},
	"RegisterRunnerResponse": wire.RegisterRunnerResponse{}, "HeartbeatPayload": wire.HeartbeatPayload{},
	"HeartbeatResponse": wire.HeartbeatResponse{}, "UpdateRunnerPayload": wire.UpdateRunnerPayload{},
	"OfflinePayload": wire.OfflinePayload{}, "OfflineResponse": wire.OfflineResponse{},
	"RequestUpdatePayload": wire.RequestUpdatePayload{}, "DispatchTaskPayload": wire.DispatchTaskPayload{},
	"TaskUpdatePayload": wire.TaskUpdatePayload{}, "RunnerList": wire.RunnerList{}, "TaskList": wire.TaskList{},
	"VersionCheckResponse": wire.VersionCheckResponse{}, "AdmissionState": wire.AdmissionState{}, "Problem": wire.Problem{},
	"Event": wire.Event{}, "EventRunner": wire.EventRunner{}, "RunnerEventData": wire.RunnerEventData{},
	"ArchivedDelivery": wire.ArchivedDelivery{}, "ArchivedList": wire.ArchivedList{},
	"RealmPolicies": wire.RealmPolicies{}, "Realm": wire.Realm{}, "CreateRealmPayload": wire.CreateRealmPayload{},
	"PatchRealmPayload": wire.PatchRealmPayload{}, "RealmList": wire.RealmList{},
	"IssueRealmKeyPayload": wire.IssueRealmKeyPayload{}, "RealmKey": wire.RealmKey{}, "RealmKeyList": wire.RealmKeyList{},
}

// jsonFields lists the JSON names of t's fields, embedded structs flattened.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case f.Anonymous && name == "":
			out = append(out, jsonFields(f.Type)...)
		default:
			if name == "" {
				name = f.Name
			}
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// schemaFields lists the properties of s and of its allOf parts.
func schemaFields(s *openapi3.Schema) []string {
	var out []string
	for name := range s.Properties {
		out = append(out, name)
	}
	for _, p := range s.AllOf {
		out = append(out, schemaFields(p.Value)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestWireSchemas: every exported struct of shared/wire has a schema with
// exactly its JSON fields.
func TestWireSchemas(t *testing.T) {
	doc := load(t, openapi.YAML())
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, filepath.Join(repo, "shared", "wire"), func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.TYPE {
					continue
				}
				for _, s := range g.Specs {
					ts := s.(*ast.TypeSpec)
					if _, isStruct := ts.Type.(*ast.StructType); isStruct && ts.Name.IsExported() {
						if _, ok := wireSchemas[ts.Name.Name]; !ok {
							t.Errorf("wire.%s has no schema: add components.schemas.%s to openapi.yaml and to wireSchemas here", ts.Name.Name, ts.Name.Name)
						}
					}
				}
			}
		}
	}
	for name, v := range wireSchemas {
		ref := doc.Components.Schemas[name]
		if ref == nil {
			t.Errorf("components.schemas.%s is missing from openapi.yaml", name)
			continue
		}
		if diff := cmp.Diff(jsonFields(reflect.TypeOf(v)), schemaFields(ref.Value)); diff != "" {
			t.Errorf("schema %s vs wire.%s JSON fields (-wire +openapi.yaml):\n%s", name, name, diff)
		}
	}
}
