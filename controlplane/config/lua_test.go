package config

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/apigw/gateway/proto/feature"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// luaFiles are the files the Lua tests' configurations may name.
var luaFiles = SourceFiles([]*gatewayv1.LuaSource{
	{Name: "lua/ok.lua", Text: "function f(r)\n  return r\nend\n"},
	{Name: "lua/bad.lua", Text: "function f(r)\n  return r\n\nlocal = 1\n"},
})

func luaViolations(t *testing.T, doc string) []pair {
	t.Helper()
	_, err := CompileWith("k.json", []byte(doc), Options{ReadFile: luaFiles})
	var ve *ValidationError
	if err != nil && !errors.As(err, &ve) {
		t.Fatal(err)
	}
	if ve == nil {
		return nil
	}
	return pairsOf(ve.Violations)
}

func TestValidateLuaRules(t *testing.T) {
	t.Parallel()
	proxy := func(members string) string {
		return conf("", ep("/a", `"extra_config": {"modifier/lua-proxy": {`+members+`}}`))
	}
	backend := func(members string) string {
		return conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/", "extra_config": {"modifier/lua-backend": {`+members+`}}}]}`)
	}
	pp := func(f string) string { return `endpoints[0].extra_config["modifier/lua-proxy"]` + f }
	bp := func(f string) string { return `endpoints[0].backend[0].extra_config["modifier/lua-backend"]` + f }
	tests := []struct {
		name string
		doc  string
		want []pair
	}{
		{"every key", proxy(`"sources": ["lua/ok.lua"], "pre": "f(request.load())", "post": "local r = response.load()",
			"allow_open_libs": true, "skip_next": true, "md5": {"lua/ok.lua": "` + md5hex("function f(r)\n  return r\nend\n") + `"}`), nil},
		{"long alias", conf("", ep("/a", `"extra_config": {"github.com/devopsfaith/krakend-lua/proxy": {"pre": "x = 1"}}`)), nil},
		{"backend level", backend(`"pre": "local r = request.load()"`), nil},
		{"missing source", proxy(`"sources": ["lua/ok.lua", "lua/nope.lua"]`), []pair{{pp(".sources[1]"), KindNotFound}}},
		{"syntax error in a source", backend(`"sources": ["lua/bad.lua"]`), []pair{{bp(".sources[0]"), KindInvalid}}},
		{"syntax error in pre and post", proxy(`"pre": "x = = 1", "post": "if then"`),
			[]pair{{pp(".post"), KindInvalid}, {pp(".pre"), KindInvalid}}},
		{"wrong checksum", proxy(`"sources": ["lua/ok.lua"], "md5": {"lua/ok.lua": "00"}`), []pair{{pp(`.md5["lua/ok.lua"]`), KindInvalid}}},
		{"checksum of no source", proxy(`"md5": {"lua/x.lua": "00"}`), []pair{{pp(`.md5["lua/x.lua"]`), KindNotFound}}},
		{"unknown key", proxy(`"prescript": "x"`), []pair{{pp(".prescript"), KindUnsupported}}},
		{"no-op endpoint", conf("", `{"endpoint": "/a", "output_encoding": "no-op", "backend": [{"url_pattern": "/", "encoding": "no-op",
			"extra_config": {"modifier/lua-backend": {"pre": "x = 1"}}}], "extra_config": {"modifier/lua-proxy": {"pre": "x = 1"}}}`),
			[]pair{{`endpoints[0].backend[0].extra_config["modifier/lua-backend"]`, KindUnsupported}, {pp(""), KindUnsupported}}},
		{"lua-endpoint", conf("", ep("/a", `"extra_config": {"modifier/lua-endpoint": {"pre": "local c = ctx.load()"}}`)), nil},
		{"lua-endpoint syntax", conf("", ep("/a", `"extra_config": {"modifier/lua-endpoint": {"pre": "local c ="}}`)),
			[]pair{{`endpoints[0].extra_config["modifier/lua-endpoint"].pre`, KindInvalid}}},
		{"lua-endpoint at the service level", conf(`"extra_config": {"modifier/lua-endpoint": {"pre": "local c = ctx.load()"}}`), nil},
		{"service lua-endpoint syntax", conf(`"extra_config": {"modifier/lua-endpoint": {"pre": "local c ="}}`),
			[]pair{{`extra_config["modifier/lua-endpoint"].pre`, KindInvalid}}},
		{"service lua-endpoint missing source", conf(`"extra_config": {"modifier/lua-endpoint": {"sources": ["nope.lua"]}}`),
			[]pair{{`extra_config["modifier/lua-endpoint"].sources[0]`, KindNotFound}}},
		{"not at the service level", conf(`"extra_config": {"modifier/lua-proxy": {}}`),
			[]pair{{`extra_config["modifier/lua-proxy"]`, KindUnsupported}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, luaViolations(t, tc.doc)); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLuaSourcesWithoutReader(t *testing.T) {
	t.Parallel()
	doc := conf("", ep("/a", `"extra_config": {"modifier/lua-proxy": {"sources": ["lua/ok.lua"]}}`))
	vs := violationsOf(t, "k.json", doc)
	if diff := cmp.Diff([]pair{{`endpoints[0].extra_config["modifier/lua-proxy"].sources[0]`, KindNotFound}}, pairsOf(vs)); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
}

func TestCompileLua(t *testing.T) {
	t.Parallel()
	doc := conf("", `{"endpoint": "/a", "extra_config": {"proxy": {"sequential": true, "sequential_propagated_params": ["resp0_x"]},
		"modifier/lua-proxy": {"sources": ["lua/ok.lua"], "post": "f(response.load())", "live": true}},
		"backend": [{"url_pattern": "/1"}, {"url_pattern": "/2", "extra_config": {"modifier/lua-backend": {"pre": "x = 1", "skip_next": true, "allow_open_libs": true}}}]}`)
	c, err := CompileWith("k.json", []byte(doc), Options{ReadFile: luaFiles})
	if err != nil {
		t.Fatal(err)
	}
	e := c.Snapshot.GetEndpoints()[0]
	want := &gatewayv1.LuaScript{Sources: []*gatewayv1.LuaSource{{Name: "lua/ok.lua", Text: "function f(r)\n  return r\nend\n"}}, Post: "f(response.load())"}
	if diff := cmp.Diff(want, e.GetLuaProxy(), protocmp.Transform()); diff != "" {
		t.Errorf("lua_proxy (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&gatewayv1.LuaScript{Pre: "x = 1", SkipNext: true, AllowOpenLibs: true}, e.GetBackends()[1].GetLuaBackend(), protocmp.Transform()); diff != "" {
		t.Errorf("lua_backend (-want +got):\n%s", diff)
	}
	if !hasString(c.Snapshot.GetFeatures(), feature.ModifierLua) {
		t.Errorf("features %v lack %s", c.Snapshot.GetFeatures(), feature.ModifierLua)
	}
	// live: true warns (the sources are embedded); the propagated params
	// have a reader, so they do not.
	var warned []string
	for _, w := range c.Warnings {
		warned = append(warned, w.GetPath())
	}
	if diff := cmp.Diff([]string{`endpoints[0].extra_config["modifier/lua-proxy"].live`}, warned); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestReferencedFiles(t *testing.T) {
	t.Parallel()
	doc := conf("", `{"endpoint": "/a", "extra_config": {"modifier/lua-proxy": {"sources": ["b.lua", "a.lua"]}},
		"backend": [{"url_pattern": "/1", "extra_config": {"modifier/lua-backend": {"sources": ["a.lua", "c.lua"]}}}]}`)
	if diff := cmp.Diff([]string{"a.lua", "b.lua", "c.lua"}, ReferencedFiles("k.json", []byte(doc), nil)); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
}

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
