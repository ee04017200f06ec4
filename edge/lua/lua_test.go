package lua_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/apigw/gateway/edge/lua"
)

func mustNew(t *testing.T, cfg lua.Config) *lua.Script {
	t.Helper()
	s, err := lua.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func deadline() time.Time { return time.Now().Add(5 * time.Second) }

const helpers = `
function post_proxy( resp )
	local responseData = resp:data()
	local col = responseData:get("collection")
	local size = col:len()
	responseData:set("total", size)
	local paths = {}
	for i=0,size-1 do
		local element = col:get(i)
		table.insert(paths, element:get("path"))
	end
	responseData:set("paths", paths)
	responseData:del("collection")
end
function json_error()
	custom_error('{"msg":"I refuse to make any coffee, I am a teapot!"}', 418)
end
function boom()
	local x = nil
	return x.y
end
`

func TestRequestAPI(t *testing.T) {
	s := mustNew(t, lua.Config{Name: "t", Pre: `
local r = request.load()
r:url(r:url() .. r:params("Id") .. "?" .. r:query())
r:method("POST")
r:headers("x-added", "1")
r:headers("X-Gone", nil)
r:body(r:body() .. "!")
r:params("New", r:headers("x-in"))
local l = r:headerList("X-Multi")
l:set(2, "c")
r:headerList("X-Multi", l)
`})
	st := s.Acquire()
	defer s.Release(st)
	st.Req.Method = "GET"
	st.Req.URL = "http://h/x/"
	st.Req.Params["Id"] = "7"
	st.Req.Query.Set("b", "2")
	st.Req.Query.Set("a", "1")
	st.Req.Headers["X-In"] = []string{"v"}
	st.Req.Headers["X-Gone"] = []string{"v"}
	st.Req.Headers["X-Multi"] = []string{"a", "b"}
	st.Req.Body = []byte("body")
	if err := st.Pre(deadline()); err != nil {
		t.Fatal(err)
	}
	r := &st.Req
	if r.URL != "http://h/x/7?a=1&b=2" || r.Method != "POST" || string(r.Body) != "body!" || r.Params["New"] != "v" {
		t.Errorf("request = %+v", r)
	}
	want := map[string][]string{"X-In": {"v"}, "X-Added": {"1"}, "X-Multi": {"a", "b", "c"}}
	if d := cmp.Diff(want, r.Headers); d != "" {
		t.Errorf("headers (-want +got):\n%s", d)
	}
	if !r.Changed.URL || !r.Changed.Headers || !r.Changed.Body || r.Changed.Query {
		t.Errorf("changes = %+v", r.Changed)
	}
}

// TestResponseData is KrakenD's harness spec lua_1 (post_proxy of
// fixtures/lua/collection.lua): a Lua table set into the data stays an
// object with string keys, numbers become float64.
func TestResponseData(t *testing.T) {
	s := mustNew(t, lua.Config{Name: "t", Sources: []lua.Source{{Name: "c.lua", Text: helpers}}, Post: "post_proxy(response.load())", AllowOpenLibs: true})
	st := s.Acquire()
	defer s.Release(st)
	if err := json.Unmarshal([]byte(`{"collection":[{"path":"/a"},{"path":"/b"}]}`), &st.Resp.Data); err != nil {
		t.Fatal(err)
	}
	if err := st.Post(deadline()); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(st.Resp.Data)
	if want := `{"paths":{"1":"/a","2":"/b"},"total":2}`; string(got) != want {
		t.Errorf("data = %s, want %s", got, want)
	}
	if !st.Resp.DataUsed {
		t.Error("DataUsed not set")
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		pre  string
		want lua.Error
	}{
		{"custom error with status", "json_error()", lua.Error{Msg: `{"msg":"I refuse to make any coffee, I am a teapot!"}`, Status: 418}},
		{"custom error with content type", `custom_error("no", 401, "text/plain")`, lua.Error{Msg: "no", Status: 401, ContentType: "text/plain"}},
		{"custom error alone", `custom_error("plain")`, lua.Error{Msg: "plain"}},
		{"runtime error in a source", "boom()", lua.Error{Msg: "attempt to index a non-table object(nil) with key 'y' (c.lua:L20)"}},
		{"unknown function", "nope()", lua.Error{Msg: "attempt to call a non-function object (c.lua:L1)"}},
		{"unknown function without sources", "", lua.Error{Msg: "attempt to call a non-function object (pre-script:L1)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := lua.Config{Name: "t", Sources: []lua.Source{{Name: "dir/c.lua", Text: helpers}}, Pre: tc.pre}
			if tc.pre == "" {
				// KrakenD counts the pre code after the sources: without
				// sources, line 1 is the pre-script's.
				cfg = lua.Config{Name: "t", Pre: "nope()"}
			}
			s := mustNew(t, cfg)
			st := s.Acquire()
			defer s.Release(st)
			err := st.Pre(deadline())
			var le *lua.Error
			if !errors.As(err, &le) {
				t.Fatalf("err = %v, want a *lua.Error", err)
			}
			if d := cmp.Diff(tc.want, *le); d != "" {
				t.Errorf("error (-want +got):\n%s", d)
			}
		})
	}
}

func TestSyntaxError(t *testing.T) {
	errs := lua.Check([]lua.Source{{Name: "a.lua", Text: "function f()\n  return 1\n"}}, "x = = 1", "")
	if len(errs) != 2 || errs[0].Where != "a.lua" || errs[1].Where != "pre" || errs[1].Line != 1 {
		t.Fatalf("errs = %v", errs)
	}
	if _, err := lua.New(lua.Config{Pre: "local ="}); err == nil {
		t.Fatal("New accepted a syntax error")
	}
}

// TestTimeout: a script that loops past its deadline is stopped.
func TestTimeout(t *testing.T) {
	s := mustNew(t, lua.Config{Name: "t", Pre: "while true do end"})
	st := s.Acquire()
	defer s.Release(st)
	start := time.Now()
	err := st.Pre(time.Now().Add(50 * time.Millisecond))
	if err == nil || err.Error() != "context deadline exceeded" {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("stopped after %v", time.Since(start))
	}
	// The state is usable again (and stopped again).
	if err := st.Pre(time.Now().Add(20 * time.Millisecond)); err == nil {
		t.Fatal("loop ended by itself")
	}
}

func TestOpenLibs(t *testing.T) {
	closed := mustNew(t, lua.Config{Pre: `local x = string.upper("a")`})
	st := closed.Acquire()
	if err := st.Pre(deadline()); err == nil {
		t.Error("string library open without allow_open_libs")
	}
	closed.Release(st)
	open := mustNew(t, lua.Config{Pre: `local x = string.upper("a")`, AllowOpenLibs: true})
	st = open.Acquire()
	if err := st.Pre(deadline()); err != nil {
		t.Error(err)
	}
	open.Release(st)
}

// TestConcurrent runs one script from many goroutines: each request sees
// only its own request object.
func TestConcurrent(t *testing.T) {
	s := mustNew(t, lua.Config{Pre: `local r = request.load(); r:url(r:params("N"))`})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				st := s.Acquire()
				n := string(rune('a'+g)) + string(rune('a'+i%26))
				st.Req.Params["N"] = n
				if err := st.Pre(deadline()); err != nil || st.Req.URL != n {
					t.Errorf("url %q err %v, want %q", st.Req.URL, err, n)
				}
				s.Release(st)
			}
		}()
	}
	wg.Wait()
}

func TestHTTPResponse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("X-Multi", "A")
		w.Header().Add("X-Multi", "B")
		w.WriteHeader(201)
		w.Write([]byte(r.Method + " " + r.Header.Get("Foo") + " " + r.Header.Get("User-Agent")))
	}))
	defer srv.Close()
	s := mustNew(t, lua.Config{UserAgent: "KrakenD Version x", Pre: `
local r = http_response.new("` + srv.URL + `", "POST", "{}", {["foo"] = "bar"})
local req = request.load()
req:body(r:statusCode() .. " " .. r:headerList("X-Multi"):get(1) .. " " .. r:body())
r:close()`})
	st := s.Acquire()
	defer s.Release(st)
	if err := st.Pre(deadline()); err != nil {
		t.Fatal(err)
	}
	if got, want := string(st.Req.Body), "201 B POST bar KrakenD Version x"; got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
}
