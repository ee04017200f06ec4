package lua

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"

	glua "github.com/yuin/gopher-lua"
)

// Request is the request a script sees (lura's proxy.Request): what the
// caller copied in, and what the script changed.
type Request struct {
	// Host is the client's Host (the ctx object of modifier/lua-endpoint).
	Host   string
	Method string
	Path   string
	URL    string // "" when there is none (lura's nil URL)
	Query  url.Values
	// Params are the endpoint parameters, first letter upper-cased as
	// lura names them ("Id"), plus the sequential propagated values
	// ("Resp0_first.foo").
	Params  map[string]string
	Headers map[string][]string // canonical names
	Body    []byte
	// Changed records what a script set (so the caller applies only that).
	Changed Changes
}

// Changes are flags of what a script set.
type Changes struct {
	Method, Path, URL, Query, Params, Headers, Body, Host bool
	// NilURL: url() was given a string url.Parse refuses, so lura holds a
	// nil URL (on which KrakenD's HTTP executor panics).
	NilURL bool
}

func (r *Request) reset() {
	r.Host, r.Method, r.Path, r.URL = "", "", "", ""
	// The maps are the state's, reused (a script's luaTable views are
	// copies: params() and headers() copy them).
	if r.Query == nil {
		r.Query, r.Params, r.Headers = url.Values{}, map[string]string{}, map[string][]string{}
	}
	clear(r.Query)
	clear(r.Params)
	clear(r.Headers)
	r.Body = nil
	r.Changed = Changes{}
}

// Response is the response a script sees in post (lura's proxy.Response).
type Response struct {
	// Data is the decoded response (JSON numbers as json.Number); a script
	// changes it in place.
	Data       map[string]any
	IsComplete bool
	StatusCode int
	Headers    map[string][]string
	// Body is the raw body (lura's Io, set for no-op backends); HasBody
	// says whether there is one.
	Body    []byte
	HasBody bool
	Changed Changes
	// DataUsed is set when a script called data(): the caller must write
	// Data back.
	DataUsed bool
}

func (r *Response) reset() {
	r.Data = emptyData
	r.IsComplete = false
	r.StatusCode = 0
	if r.Headers == nil {
		r.Headers = map[string][]string{}
	}
	clear(r.Headers)
	r.Body, r.HasBody = nil, false
	r.Changed = Changes{}
	r.DataUsed = false
}

// emptyData is Response.Data until the caller sets it; data() replaces it
// with a map of the script's own before handing it out.
var emptyData = map[string]any{}

// Table and List are the luaTable and luaList userdata values: views of a
// Go map or slice, changed in place.
type Table struct{ Data map[string]any }
type List struct{ Data []any }

var (
	errNeedsArguments   = errors.New("need arguments")
	errResponseExpected = errors.New("response expected")
	errRequestExpected  = errors.New("request expected")
	errInvalidLuaList   = errors.New("invalid header value, must be a luaList")
)

// fn adapts a Go function returning (results pushed, error) to Lua, as
// krakend's binder does: an error is raised as a Lua error.
func fn(f func(L *glua.LState) (int, error)) glua.LGFunction {
	return func(L *glua.LState) int {
		n, err := f(L)
		if err != nil {
			L.RaiseError("%s", err.Error())
			return 0
		}
		return n
	}
}

// table registers a type metatable called name, global under that name,
// with static functions on it and methods in __index (binder's Table).
func table(L *glua.LState, name string, static, methods map[string]glua.LGFunction) *glua.LTable {
	mt := L.NewTypeMetatable(name)
	L.SetGlobal(name, mt)
	for k, f := range static {
		L.SetField(mt, k, L.NewFunction(f))
	}
	L.SetField(mt, "__index", L.SetFuncs(L.NewTable(), methods))
	return mt
}

func pushData(L *glua.LState, v any, typ string) {
	ud := L.NewUserData()
	ud.Value = v
	L.SetMetatable(ud, L.GetTypeMetatable(typ))
	L.Push(ud)
}

func register(st *State) {
	L := st.L
	L.SetGlobal("custom_error", L.NewFunction(fn(customError)))
	table(L, "luaNil", map[string]glua.LGFunction{"new": fn(func(L *glua.LState) (int, error) {
		pushData(L, nil, "luaNil")
		return 1, nil
	})}, nil)
	registerTable(L)
	registerList(L)
	registerHTTP(st)

	reqMT := table(L, "request", map[string]glua.LGFunction{"load": func(L *glua.LState) int {
		L.Push(st.reqUD)
		return 1
	}}, requestMethods)
	st.reqUD = L.NewUserData()
	st.reqUD.Value = &st.Req
	L.SetMetatable(st.reqUD, reqMT)

	ctxMT := table(L, "ctx", map[string]glua.LGFunction{"load": func(L *glua.LState) int {
		L.Push(st.ctxUD)
		return 1
	}}, ctxMethods)
	st.ctxUD = L.NewUserData()
	st.ctxUD.Value = &st.Req
	L.SetMetatable(st.ctxUD, ctxMT)

	respMT := table(L, "response", map[string]glua.LGFunction{"load": func(L *glua.LState) int {
		L.Push(st.respUD)
		return 1
	}}, responseMethods)
	st.respUD = L.NewUserData()
	st.respUD.Value = &st.Resp
	L.SetMetatable(st.respUD, respMT)
}

func customError(L *glua.LState) (int, error) {
	switch L.GetTop() {
	case 0:
		return 0, errNeedsArguments
	case 1:
		return 0, fmt.Errorf("%s%s%d", L.CheckString(1), separator, -1)
	case 2:
		return 0, fmt.Errorf("%s%s%d", L.CheckString(1), separator, int(L.CheckNumber(2)))
	default:
		return 0, fmt.Errorf("%s%s%d%s%s", L.CheckString(1), separator, int(L.CheckNumber(2)), separator, L.CheckString(3))
	}
}

// --- request -------------------------------------------------------------

var requestMethods = map[string]glua.LGFunction{
	"method": fn(reqString(func(r *Request) *string { return &r.Method }, func(c *Changes) { c.Method = true })),
	"path":   fn(reqString(func(r *Request) *string { return &r.Path }, func(c *Changes) { c.Path = true })),
	"url": fn(func(L *glua.LState) (int, error) {
		r, err := checkRequest(L)
		if err != nil {
			return 0, err
		}
		if L.GetTop() > 1 {
			// lura keeps url.Parse's result: an unparsable URL is no URL.
			u, err := url.Parse(L.CheckString(2))
			r.URL = ""
			if err == nil {
				r.URL = u.String()
			}
			r.Changed.URL = true
			r.Changed.NilURL = err != nil
			return 0, nil
		}
		L.Push(glua.LString(r.URL))
		return 1, nil
	}),
	"query": fn(func(L *glua.LState) (int, error) {
		r, err := checkRequest(L)
		if err != nil {
			return 0, err
		}
		if L.GetTop() == 1 {
			L.Push(glua.LString(r.Query.Encode()))
			return 1, nil
		}
		r.Query, _ = url.ParseQuery(L.CheckString(2))
		r.Changed.Query = true
		return 0, nil
	}),
	"params": fn(func(L *glua.LState) (int, error) {
		r, err := checkRequest(L)
		if err != nil {
			return 0, err
		}
		switch L.GetTop() {
		case 1:
			m := make(map[string]any, len(r.Params))
			for k, v := range r.Params {
				m[k] = v
			}
			pushData(L, &Table{Data: m}, "luaTable")
			return 1, nil
		case 2:
			L.Push(glua.LString(r.Params[L.CheckString(2)]))
			return 1, nil
		default:
			r.Params[L.CheckString(2)] = L.CheckString(3)
			r.Changed.Params = true
			return 0, nil
		}
	}),
	"headers": fn(func(L *glua.LState) (int, error) {
		r, err := checkRequest(L)
		if err != nil {
			return 0, err
		}
		return headers(L, r.Headers, &r.Changed, true)
	}),
	"headerList": fn(func(L *glua.LState) (int, error) {
		r, err := checkRequest(L)
		if err != nil {
			return 0, err
		}
		return headerList(L, r.Headers, &r.Changed)
	}),
	"body": fn(func(L *glua.LState) (int, error) {
		r, err := checkRequest(L)
		if err != nil {
			return 0, err
		}
		if L.GetTop() == 2 {
			r.Body = []byte(L.CheckString(2))
			r.Changed.Body = true
			return 0, nil
		}
		L.Push(glua.LString(r.Body))
		return 1, nil
	}),
}

func checkRequest(L *glua.LState) (*Request, error) {
	r, ok := L.CheckUserData(1).Value.(*Request)
	if !ok {
		return nil, errRequestExpected
	}
	return r, nil
}

func reqString(field func(*Request) *string, mark func(*Changes)) func(L *glua.LState) (int, error) {
	return func(L *glua.LState) (int, error) {
		r, err := checkRequest(L)
		if err != nil {
			return 0, err
		}
		if L.GetTop() == 1 {
			L.Push(glua.LString(*field(r)))
			return 1, nil
		}
		*field(r) = L.CheckString(2)
		mark(&r.Changed)
		return 0, nil
	}
}

// headers is request:headers / response:headers. krakend-lua canonicalises
// the name when reading a request header and when setting either, but
// reads a response header by the name as given.
func headers(L *glua.LState, h map[string][]string, ch *Changes, canonicalGet bool) (int, error) {
	switch L.GetTop() {
	case 1:
		m := make(map[string]any, len(h))
		for k, vs := range h {
			var list []any
			for _, v := range vs {
				list = append(list, v)
			}
			m[k] = list
		}
		pushData(L, &Table{Data: m}, "luaTable")
		return 1, nil
	case 2:
		k := L.CheckString(2)
		if canonicalGet {
			k = textproto.CanonicalMIMEHeaderKey(k)
		}
		if vs := h[k]; len(vs) > 0 {
			L.Push(glua.LString(vs[0]))
		} else {
			L.Push(glua.LString(""))
		}
		return 1, nil
	default:
		k := http.CanonicalHeaderKey(L.CheckString(2))
		ch.Headers = true
		if L.CheckAny(3) == glua.LNil {
			delete(h, k)
			return 0, nil
		}
		h[k] = []string{L.CheckString(3)}
		return 0, nil
	}
}

func headerList(L *glua.LState, h map[string][]string, ch *Changes) (int, error) {
	switch L.GetTop() {
	case 1:
		return 0, errNeedsArguments
	case 2:
		vs := h[textproto.CanonicalMIMEHeaderKey(L.CheckString(2))]
		d := make([]any, len(vs))
		for i := range vs {
			d[i] = vs[i]
		}
		pushData(L, &List{Data: d}, "luaList")
		return 1, nil
	default:
		k := textproto.CanonicalMIMEHeaderKey(L.CheckString(2))
		ud, ok := L.CheckAny(3).(*glua.LUserData)
		if !ok {
			return 0, errInvalidLuaList
		}
		list, ok := ud.Value.(*List)
		if !ok {
			return 0, errInvalidLuaList
		}
		d := make([]string, len(list.Data))
		for i := range list.Data {
			d[i] = fmt.Sprintf("%s", list.Data[i])
		}
		h[k] = d
		ch.Headers = true
		return 0, nil
	}
}

// --- response ------------------------------------------------------------

var responseMethods = map[string]glua.LGFunction{
	"isComplete": fn(func(L *glua.LState) (int, error) {
		r, err := checkResponse(L)
		if err != nil {
			return 0, err
		}
		if L.GetTop() == 1 {
			L.Push(glua.LBool(r.IsComplete))
			return 1, nil
		}
		r.IsComplete = L.CheckBool(2)
		return 0, nil
	}),
	"statusCode": fn(func(L *glua.LState) (int, error) {
		r, err := checkResponse(L)
		if err != nil {
			return 0, err
		}
		if L.GetTop() == 1 {
			L.Push(glua.LNumber(r.StatusCode))
			return 1, nil
		}
		r.StatusCode = int(L.CheckNumber(2))
		return 0, nil
	}),
	"data": fn(func(L *glua.LState) (int, error) {
		r, err := checkResponse(L)
		if err != nil {
			return 0, err
		}
		r.DataUsed = true
		if len(r.Data) == 0 {
			// Never hand out the shared empty map: the script may fill it.
			r.Data = map[string]any{}
		}
		pushData(L, &Table{Data: r.Data}, "luaTable")
		return 1, nil
	}),
	"headers": fn(func(L *glua.LState) (int, error) {
		r, err := checkResponse(L)
		if err != nil {
			return 0, err
		}
		return headers(L, r.Headers, &r.Changed, false)
	}),
	"headerList": fn(func(L *glua.LState) (int, error) {
		r, err := checkResponse(L)
		if err != nil {
			return 0, errRequestExpected
		}
		return headerList(L, r.Headers, &r.Changed)
	}),
	"body": fn(func(L *glua.LState) (int, error) {
		r, err := checkResponse(L)
		if err != nil {
			return 0, err
		}
		if L.GetTop() == 2 {
			r.Body, r.HasBody = []byte(L.CheckString(2)), true
			r.Changed.Body = true
			return 0, nil
		}
		L.Push(glua.LString(r.Body))
		return 1, nil
	}),
}

func checkResponse(L *glua.LState) (*Response, error) {
	r, ok := L.CheckUserData(1).Value.(*Response)
	if !ok {
		return nil, errResponseExpected
	}
	return r, nil
}

// --- luaTable and luaList ------------------------------------------------

func registerTable(L *glua.LState) {
	table(L, "luaTable", map[string]glua.LGFunction{"new": fn(func(L *glua.LState) (int, error) {
		pushData(L, &Table{Data: map[string]any{}}, "luaTable")
		return 1, nil
	})}, map[string]glua.LGFunction{
		"get": fn(func(L *glua.LState) (int, error) {
			if L.GetTop() != 2 {
				return 0, errNeedsArguments
			}
			t, ok := L.CheckUserData(1).Value.(*Table)
			if !ok {
				return 0, errResponseExpected
			}
			v, ok := t.Data[L.CheckString(2)]
			if !ok {
				return 0, nil
			}
			return pushValue(L, v)
		}),
		"set": fn(func(L *glua.LState) (int, error) {
			if L.GetTop() != 3 {
				return 0, errNeedsArguments
			}
			t, ok := L.CheckUserData(1).Value.(*Table)
			if !ok {
				return 0, errResponseExpected
			}
			if v, ok := fromLua(L.CheckAny(3)); ok {
				t.Data[L.CheckString(2)] = v
			}
			return 0, nil
		}),
		"len": fn(func(L *glua.LState) (int, error) {
			t, ok := L.CheckUserData(1).Value.(*Table)
			if !ok {
				return 0, errResponseExpected
			}
			L.Push(glua.LNumber(len(t.Data)))
			return 1, nil
		}),
		"del": fn(func(L *glua.LState) (int, error) {
			if L.GetTop() != 2 {
				return 0, errNeedsArguments
			}
			t, ok := L.CheckUserData(1).Value.(*Table)
			if !ok {
				return 0, errResponseExpected
			}
			delete(t.Data, L.CheckString(2))
			return 0, nil
		}),
		"keys": fn(func(L *glua.LState) (int, error) {
			t, ok := L.CheckUserData(1).Value.(*Table)
			if !ok {
				return 0, errResponseExpected
			}
			keys := make([]string, 0, len(t.Data))
			for k := range t.Data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			d := make([]any, len(keys))
			for i, k := range keys {
				d[i] = k
			}
			pushData(L, &List{Data: d}, "luaList")
			return 1, nil
		}),
		"keyExists": fn(func(L *glua.LState) (int, error) {
			if L.GetTop() != 2 {
				return 0, errNeedsArguments
			}
			t, ok := L.CheckUserData(1).Value.(*Table)
			if !ok {
				return 0, errResponseExpected
			}
			_, ok = t.Data[L.CheckString(2)]
			L.Push(glua.LBool(ok))
			return 1, nil
		}),
	})
}

func registerList(L *glua.LState) {
	table(L, "luaList", map[string]glua.LGFunction{"new": fn(func(L *glua.LState) (int, error) {
		pushData(L, &List{Data: []any{}}, "luaList")
		return 1, nil
	})}, map[string]glua.LGFunction{
		"get": fn(func(L *glua.LState) (int, error) {
			if L.GetTop() != 2 {
				return 0, errNeedsArguments
			}
			l, ok := L.CheckUserData(1).Value.(*List)
			if !ok {
				return 0, errResponseExpected
			}
			i := int(L.CheckNumber(2))
			if i < 0 || i >= len(l.Data) {
				return 0, nil
			}
			return pushValue(L, l.Data[i])
		}),
		"set": fn(func(L *glua.LState) (int, error) {
			if L.GetTop() != 3 {
				return 0, errNeedsArguments
			}
			l, ok := L.CheckUserData(1).Value.(*List)
			if !ok {
				return 0, errResponseExpected
			}
			i := int(L.CheckNumber(2))
			if i < 0 {
				return 0, nil
			}
			if i >= len(l.Data) {
				// krakend-lua grows the list to i+1 entries (nil-filled).
				if cap(l.Data) > i {
					for j := len(l.Data); j < i; j++ {
						l.Data = append(l.Data, nil)
					}
				} else {
					d := make([]any, i+1)
					copy(d, l.Data)
					l.Data = d
				}
			}
			if v, ok := fromLua(L.CheckAny(3)); ok && i < len(l.Data) {
				l.Data[i] = v
			}
			return 0, nil
		}),
		"len": fn(func(L *glua.LState) (int, error) {
			l, ok := L.CheckUserData(1).Value.(*List)
			if !ok {
				return 0, errResponseExpected
			}
			L.Push(glua.LNumber(len(l.Data)))
			return 1, nil
		}),
		"del": fn(func(L *glua.LState) (int, error) {
			if L.GetTop() != 2 {
				return 0, errNeedsArguments
			}
			l, ok := L.CheckUserData(1).Value.(*List)
			if !ok {
				return 0, errResponseExpected
			}
			i := int(L.CheckNumber(2))
			if i < 0 || i >= len(l.Data) {
				return 0, nil
			}
			last := len(l.Data) - 1
			copy(l.Data[i:], l.Data[i+1:])
			l.Data[last] = nil
			l.Data = l.Data[:last]
			return 0, nil
		}),
	})
}

// pushValue pushes a Go value of a Table or List as krakend-lua does:
// scalars as Lua values, objects and arrays as luaTable and luaList views,
// null as a luaNil.
func pushValue(L *glua.LState, v any) (int, error) {
	switch t := v.(type) {
	case nil:
		pushData(L, nil, "luaNil")
	case string:
		L.Push(glua.LString(t))
	case json.Number:
		n, _ := t.Float64()
		L.Push(glua.LNumber(n))
	case int:
		L.Push(glua.LNumber(t))
	case float64:
		L.Push(glua.LNumber(t))
	case bool:
		L.Push(glua.LBool(t))
	case []any:
		pushData(L, &List{Data: t}, "luaList")
	case map[string]any:
		pushData(L, &Table{Data: t}, "luaTable")
	default:
		return 0, fmt.Errorf("unknown type (%T) %v", t, t)
	}
	return 1, nil
}

// fromLua converts a value given to set: strings, numbers (float64) and
// booleans as they are, a Lua table through parseTable (its own nested
// tables become lists when every key is an integer), a luaTable or luaList
// as its data, luaNil as null. ok is false for what set ignores.
func fromLua(v glua.LValue) (any, bool) {
	switch t := v.(type) {
	case glua.LString:
		return string(t), true
	case glua.LNumber:
		return float64(t), true
	case glua.LBool:
		return bool(t), true
	case *glua.LTable:
		res := map[string]any{}
		t.ForEach(func(k, v glua.LValue) { parseTable(k, v, res) })
		return res, true
	case *glua.LUserData:
		switch d := t.Value.(type) {
		case nil:
			return nil, true
		case *Table:
			return d.Data, true
		case *List:
			return d.Data, true
		}
	}
	return nil, false
}

// parseTable is krakend-lua's ParseToTable: one entry of a Lua table into
// acc; integral numbers become ints.
func parseTable(k, v glua.LValue, acc map[string]any) {
	key := k.String()
	switch t := v.(type) {
	case glua.LString:
		acc[key] = string(t)
	case glua.LBool:
		acc[key] = bool(t)
	case glua.LNumber:
		f := float64(t)
		if f == float64(int64(t)) {
			acc[key] = int(t)
		} else {
			acc[key] = f
		}
	case *glua.LUserData:
		switch d := t.Value.(type) {
		case nil:
			acc[key] = nil
		case *Table:
			acc[key] = d.Data
		case *List:
			acc[key] = d.Data
		}
	case *glua.LTable:
		res := map[string]any{}
		t.ForEach(func(k, v glua.LValue) { parseTable(k, v, res) })
		acc[key] = res
		if s, ok := toSlice(res); ok {
			acc[key] = s
		}
	}
}

func toSlice(m map[string]any) ([]any, bool) {
	keys := make([]int, 0, len(m))
	for k := range m {
		i, err := strconv.Atoi(k)
		if err != nil {
			return nil, false
		}
		keys = append(keys, i)
	}
	sort.Ints(keys)
	var out []any // an empty table is a nil list (JSON null), as in krakend-lua
	for _, i := range keys {
		out = append(out, m[strconv.Itoa(i)])
	}
	return out, true
}

// --- ctx (modifier/lua-endpoint) -----------------------------------------

// ctxMethods are krakend-lua's gin ctx methods, on the same Request: url is
// the request URI ("/path?query"), query reads and sets one key, params
// use the route's own names.
var ctxMethods = map[string]glua.LGFunction{
	"method": requestMethods["method"],
	"host":   fn(reqString(func(r *Request) *string { return &r.Host }, func(c *Changes) { c.Host = true })),
	"url": fn(func(L *glua.LState) (int, error) {
		r, err := checkRequest(L)
		if err != nil {
			return 0, err
		}
		if L.GetTop() == 1 {
			L.Push(glua.LString(r.URL))
			return 1, nil
		}
		u, err := url.Parse(L.CheckString(2))
		if err == nil {
			r.URL = u.String()
			r.Query = u.Query()
			r.Changed.URL = true
		}
		return 0, nil
	}),
	"query": fn(func(L *glua.LState) (int, error) {
		r, err := checkRequest(L)
		if err != nil {
			return 0, err
		}
		switch L.GetTop() {
		case 1:
			return 0, errNeedsArguments
		case 2:
			L.Push(glua.LString(r.Query.Get(L.CheckString(2))))
			return 1, nil
		default:
			r.Query.Set(L.CheckString(2), L.CheckString(3))
			r.Changed.Query = true
			return 0, nil
		}
	}),
	"params": requestMethods["params"],
	"headers": fn(func(L *glua.LState) (int, error) {
		r, err := checkRequest(L)
		if err != nil {
			return 0, err
		}
		return headers(L, r.Headers, &r.Changed, true)
	}),
	"headerList": requestMethods["headerList"],
	"body":       requestMethods["body"],
}
