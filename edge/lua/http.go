package lua

import (
	"bytes"
	"errors"
	"io"
	"net/http"

	glua "github.com/yuin/gopher-lua"
)

// httpResponse is the http_response userdata: the answer of a call a
// script made with http_response.new.
type httpResponse struct {
	resp *http.Response
	body []byte
	read bool
}

// maxHTTPBody bounds what http_response reads of an answer.
const maxHTTPBody = 10 << 20

func (h *httpResponse) readBody() []byte {
	if !h.read && h.resp != nil && h.resp.Body != nil {
		h.body, _ = io.ReadAll(io.LimitReader(h.resp.Body, maxHTTPBody))
		h.resp.Body.Close()
		h.read = true
	}
	return h.body
}

// registerHTTP registers http_response: new(url[, method, body[, headers]])
// makes the call under the script's deadline and returns the answer, with
// statusCode(), headers(name), headerList(name), body() and close().
func registerHTTP(st *State) {
	check := func(L *glua.LState) (*httpResponse, error) {
		h, ok := L.CheckUserData(1).Value.(*httpResponse)
		if !ok || h.resp == nil {
			return nil, errResponseExpected
		}
		return h, nil
	}
	table(st.L, "http_response", map[string]glua.LGFunction{"new": fn(func(L *glua.LState) (int, error) {
		n := L.GetTop()
		if n == 0 || n == 2 {
			return 0, errors.New("need 1, 3 or 4 arguments")
		}
		method, body := http.MethodGet, ""
		if n >= 3 {
			method, body = L.CheckString(2), L.CheckString(3)
		}
		req, err := http.NewRequestWithContext(&st.ctx, method, L.CheckString(1), bytes.NewBufferString(body))
		if err != nil {
			return 0, err
		}
		if n == 1 {
			req.Body, req.ContentLength = http.NoBody, 0
		}
		if n >= 4 {
			if t, ok := L.CheckAny(4).(*glua.LTable); ok {
				t.ForEach(func(k, v glua.LValue) {
					switch l := v.(type) {
					case glua.LString:
						req.Header.Add(k.String(), string(l))
					case *glua.LTable:
						l.ForEach(func(_, v glua.LValue) { req.Header.Add(k.String(), v.String()) })
					}
				})
			}
		}
		req.Header.Add("User-Agent", st.s.ua)
		resp, err := st.s.client.Do(req)
		if err != nil {
			return 0, err
		}
		h := &httpResponse{resp: resp}
		st.opened = append(st.opened, h)
		pushData(L, h, "http_response")
		return 1, nil
	})}, map[string]glua.LGFunction{
		"statusCode": fn(func(L *glua.LState) (int, error) {
			h, err := check(L)
			if err != nil {
				return 0, err
			}
			L.Push(glua.LNumber(h.resp.StatusCode))
			return 1, nil
		}),
		"headers": fn(func(L *glua.LState) (int, error) {
			h, err := check(L)
			if err != nil {
				return 0, err
			}
			if L.GetTop() != 2 {
				return 0, errNeedsArguments
			}
			L.Push(glua.LString(h.resp.Header.Get(L.CheckString(2))))
			return 1, nil
		}),
		"headerList": fn(func(L *glua.LState) (int, error) {
			h, err := check(L)
			if err != nil {
				return 0, err
			}
			if L.GetTop() != 2 {
				return 0, errNeedsArguments
			}
			vs := h.resp.Header.Values(L.CheckString(2))
			d := make([]any, len(vs))
			for i := range vs {
				d[i] = vs[i]
			}
			pushData(L, &List{Data: d}, "luaList")
			return 1, nil
		}),
		"body": fn(func(L *glua.LState) (int, error) {
			h, err := check(L)
			if err != nil {
				return 0, err
			}
			L.Push(glua.LString(h.readBody()))
			return 1, nil
		}),
		"close": fn(func(L *glua.LState) (int, error) {
			if h, ok := L.CheckUserData(1).Value.(*httpResponse); ok && h.resp != nil {
				h.close()
			}
			return 0, nil
		}),
	})
}

func (h *httpResponse) close() {
	if h.resp != nil && h.resp.Body != nil && !h.read {
		h.resp.Body.Close()
	}
	h.read = true
}
