package cel

import (
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

// Inbound is the endpoint-level Request: lura's proxy.Request as its
// endpoint handler builds it from the client's request (the path as
// decoded, the parameters with names first-letter upper-cased, only the
// input_headers plus X-Forwarded-For, X-Forwarded-Host and User-Agent,
// only the input_query_strings). Fill the exported fields, then Reset
// between requests.
type Inbound struct {
	Req *fasthttp.Request
	// ParamNames are lura's names ("Id" for {id}), ParamValues the values
	// in the same order.
	ParamNames  []string
	ParamValues [][]byte
	// HeaderNames is the endpoint's input_headers (canonical); AllHeaders
	// is input_headers ["*"].
	HeaderNames []string
	AllHeaders  bool
	QueryNames  []string
	AllQuery    bool
	ClientIP    []byte
	UserAgent   string // lura's "KrakenD Version X"

	params  map[string]string
	headers map[string][]string
	query   map[string][]string
}

// Reset drops the request and the built variables.
func (in *Inbound) Reset() {
	*in = Inbound{ParamNames: in.ParamNames, HeaderNames: in.HeaderNames, AllHeaders: in.AllHeaders,
		QueryNames: in.QueryNames, AllQuery: in.AllQuery, UserAgent: in.UserAgent}
}

func (in *Inbound) Method() string { return string(in.Req.Header.Method()) }
func (in *Inbound) Path() string   { return string(in.Req.URI().Path()) }

func (in *Inbound) Params() map[string]string {
	if in.params == nil {
		in.params = paramMap(in.ParamNames, in.ParamValues)
	}
	return in.params
}

func (in *Inbound) Headers() map[string][]string {
	if in.headers != nil {
		return in.headers
	}
	h := &in.Req.Header
	m := make(map[string][]string, len(in.HeaderNames)+3)
	if in.AllHeaders {
		for k, v := range h.All() {
			ks := string(k)
			m[ks] = append(m[ks], string(v))
		}
	} else {
		for _, n := range in.HeaderNames {
			for _, v := range h.PeekAll(n) {
				m[n] = append(m[n], string(v))
			}
		}
	}
	m["X-Forwarded-For"] = []string{string(in.ClientIP)}
	m["X-Forwarded-Host"] = []string{string(in.Req.Host())}
	if _, ok := m["User-Agent"]; !ok {
		m["User-Agent"] = []string{in.UserAgent}
	} else {
		m["X-Forwarded-Via"] = []string{in.UserAgent}
	}
	in.headers = m
	return m
}

func (in *Inbound) Query() map[string][]string {
	if in.query != nil {
		return in.query
	}
	args := in.Req.URI().QueryArgs()
	m := make(map[string][]string, len(in.QueryNames))
	if in.AllQuery {
		for k, v := range args.All() {
			ks := string(k)
			m[ks] = append(m[ks], string(v))
		}
	} else {
		for _, n := range in.QueryNames {
			for _, v := range args.PeekMulti(n) {
				m[n] = append(m[n], string(v))
			}
		}
	}
	in.query = m
	return m
}

// Outbound is the backend-level Request: the request as the backend will
// receive it (method, path and query from its url_pattern, the headers it
// forwards), with the endpoint's parameters.
type Outbound struct {
	Req         *fasthttp.Request
	ParamNames  []string
	ParamValues [][]byte
	// SkipAcceptEncoding drops the Accept-Encoding the edge added itself
	// (Go's transport adds it below lura's request).
	SkipAcceptEncoding bool
	// TemplateQuery is the url_pattern's own query, the head of Req's
	// query string: lura keeps it in the path (req_path "/x?z=1"), and
	// req_querystring holds only the forwarded client query.
	TemplateQuery []byte

	params map[string]string
}

func (o *Outbound) Method() string { return string(o.Req.Header.Method()) }
func (o *Outbound) Path() string {
	if len(o.TemplateQuery) == 0 {
		return string(o.Req.URI().Path())
	}
	return string(o.Req.URI().Path()) + "?" + string(o.TemplateQuery)
}

func (o *Outbound) Params() map[string]string {
	if o.params == nil {
		o.params = paramMap(o.ParamNames, o.ParamValues)
	}
	return o.params
}

func (o *Outbound) Headers() map[string][]string {
	m := map[string][]string{}
	for k, v := range o.Req.Header.All() {
		switch string(k) {
		case "Host", "Content-Length", "Connection", "Transfer-Encoding":
			continue
		case "Accept-Encoding":
			if o.SkipAcceptEncoding {
				continue
			}
		}
		ks := string(k)
		m[ks] = append(m[ks], string(v))
	}
	return m
}

func (o *Outbound) Query() map[string][]string {
	m := map[string][]string{}
	qs := o.Req.URI().QueryString()
	if n := len(o.TemplateQuery); n > 0 {
		if n >= len(qs) {
			return m
		}
		qs = qs[n+1:] // the template, then '&'
	}
	var args fasthttp.Args
	args.ParseBytes(qs)
	for k, v := range args.All() {
		ks := string(k)
		m[ks] = append(m[ks], string(v))
	}
	return m
}

func paramMap(names []string, values [][]byte) map[string]string {
	m := make(map[string]string, len(names))
	for i, n := range names {
		if i < len(values) {
			m[n] = string(values[i])
		}
	}
	return m
}

// Result is a Response over decoded data: lura's proxy.Response for a
// JSON (or xml, string) backend and for the merged endpoint response,
// whose metadata is empty (status 0, no headers) unless the data is a
// return_error_details failure (Code set).
type Result struct {
	Complete bool
	Code     int             // resp_metadata_status
	Value    *fastjson.Value // nil: empty data
	// Raw is the body when it was kept undecoded (a valid JSON object).
	Raw []byte

	data map[string]any
}

func (r *Result) Completed() bool              { return r.Complete }
func (r *Result) Status() int                  { return r.Code }
func (r *Result) Headers() map[string][]string { return map[string][]string{} }
func (r *Result) Data() map[string]any {
	if r.data != nil {
		return r.data
	}
	v := r.Value
	if v == nil && r.Raw != nil {
		v, _ = fastjson.ParseBytes(r.Raw)
	}
	m, _ := native(v).(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	r.data = m
	return m
}

// native converts a JSON value as lura's decoder (UseNumber) leaves it:
// numbers are json.Number, which CEL sees as strings.
func native(v *fastjson.Value) any {
	if v == nil {
		return nil
	}
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		m := make(map[string]any, o.Len())
		o.Visit(func(k []byte, x *fastjson.Value) { m[string(k)] = native(x) })
		return m
	case fastjson.TypeArray:
		a, _ := v.Array()
		out := make([]any, len(a))
		for i, x := range a {
			out[i] = native(x)
		}
		return out
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return string(b)
	case fastjson.TypeNumber:
		return string(v.MarshalTo(nil))
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	}
	return nil
}
