package schema_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/schema"
)

const userSchema = `{
	"type": "object",
	"required": ["name", "email"],
	"properties": {
		"name":  {"type": "string", "minLength": 1},
		"email": {"type": "string", "format": "email"},
		"age":   {"type": "integer", "minimum": 0}
	},
	"additionalProperties": false
}`

const validUser = `{"name":"Ada","email":"ada@example.com","age":36}`

func mustNew(t testing.TB, doc string) *schema.Validator {
	t.Helper()
	v, err := schema.New([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		schema  string
		body    string
		wantErr bool
	}{
		{"valid", userSchema, validUser, false},
		{"valid with surrounding whitespace", userSchema, "\n " + validUser + " \n", false},
		{"empty body", userSchema, "", true},
		{"whitespace body", userSchema, "  ", true},
		{"not JSON", userSchema, `name=Ada`, true},
		{"truncated JSON", userSchema, `{"name":"Ada"`, true},
		// As KrakenD (encoding/json's Decoder): the first value is
		// validated, what follows is not looked at.
		{"two JSON values", userSchema, validUser + `{}`, false},
		{"valid value then garbage", userSchema, validUser + ` trailing`, false},
		{"invalid value then a valid one", userSchema, `{}` + validUser, true},
		{"wrong type", userSchema, `{"name":"Ada","email":"ada@example.com","age":"36"}`, true},
		{"missing required", userSchema, `{"name":"Ada"}`, true},
		{"additional property", userSchema, `{"name":"Ada","email":"ada@example.com","admin":true}`, true},
		{"format asserted", userSchema, `{"name":"Ada","email":"not an email"}`, true},
		{"array instead of object", userSchema, `[]`, true},
		{"any object", `{"type":"object"}`, `{}`, false},
		{"big integer kept exact", `{"type":"integer","maximum":9007199254740993}`, `9007199254740993`, false},
		{"big integer over the maximum", `{"type":"integer","maximum":9007199254740992}`, `9007199254740993`, true},
		{"draft-04 exclusiveMinimum boolean", `{"$schema":"http://json-schema.org/draft-04/schema#","type":"number","minimum":1,"exclusiveMinimum":true}`, `1`, true},
		{"draft-07 tuple items", `{"$schema":"http://json-schema.org/draft-07/schema#","type":"array","items":[{"type":"string"},{"type":"integer"}]}`, `["a","b"]`, true},
		{"draft 2020-12 prefixItems by default", `{"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}]}`, `["a",1]`, false},
		{"draft 2020-12 prefixItems violated", `{"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}]}`, `["a","b"]`, true},
		{"internal $ref", `{"$defs":{"id":{"type":"integer"}},"properties":{"id":{"$ref":"#/$defs/id"}}}`, `{"id":"x"}`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := mustNew(t, tc.schema).Validate([]byte(tc.body))
			if (err != nil) != tc.wantErr {
				t.Errorf("Validate(%q) = %v, want error: %v", tc.body, err, tc.wantErr)
			}
		})
	}
}

func TestValidateEmptyBody(t *testing.T) {
	t.Parallel()
	if err := mustNew(t, userSchema).Validate(nil); !errors.Is(err, schema.ErrEmptyBody) {
		t.Errorf("Validate(nil) = %v, want ErrEmptyBody", err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		doc     string
		wantNil bool
		wantErr string // substring of the error
	}{
		{name: "no schema", doc: "", wantNil: true},
		{name: "blank schema", doc: " \n", wantNil: true},
		{name: "not JSON", doc: `{"type":`, wantErr: "decode schema"},
		{name: "invalid keyword value", doc: `{"type":"objekt"}`, wantErr: "compile"},
		{name: "invalid for its draft", doc: `{"$schema":"http://json-schema.org/draft-07/schema#","required":"name"}`, wantErr: "compile"},
		{name: "remote $ref is never fetched", doc: `{"$ref":"https://example.com/schema.json"}`, wantErr: "not allowed"},
		{name: "file $ref is never read", doc: `{"$ref":"file:///etc/passwd"}`, wantErr: "not allowed"},
		{name: "relative $ref is never read", doc: `{"$ref":"other.json"}`, wantErr: "not allowed"},
		{name: "unknown meta-schema", doc: `{"$schema":"https://example.com/meta"}`, wantErr: "compile"},
		{name: "boolean schema", doc: `true`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := schema.New([]byte(tc.doc))
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("New = %v, %v; want an error containing %q", v, err, tc.wantErr)
				}
			case err != nil:
				t.Errorf("New: %v", err)
			case (v == nil) != tc.wantNil:
				t.Errorf("New = %v; want nil: %v", v, tc.wantNil)
			}
		})
	}
}

func TestNilValidator(t *testing.T) {
	t.Parallel()
	var v *schema.Validator
	if err := v.Validate(nil); err != nil {
		t.Errorf("nil Validator: %v", err)
	}
}

// TestServer runs the validator where the edge does, in a real fasthttp
// handler on 127.0.0.1:0, answering 400 with the fixed body.
func TestServer(t *testing.T) {
	t.Parallel()
	v := mustNew(t, userSchema)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if err := v.Validate(ctx.PostBody()); err != nil {
			ctx.SetStatusCode(fasthttp.StatusBadRequest)
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"error":"bad_request"}`)
			return
		}
		ctx.SetBodyString("passed")
	}}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	hc := &fasthttp.HostClient{Addr: ln.Addr().String()}
	tests := []struct {
		name       string
		method     string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"valid", "POST", validUser, 200, "passed"},
		{"invalid", "POST", `{"name":""}`, 400, `{"error":"bad_request"}`},
		{"not JSON", "PUT", `<user/>`, 400, `{"error":"bad_request"}`},
		{"missing body", "POST", "", 400, `{"error":"bad_request"}`},
		{"GET has no body", "GET", "", 400, `{"error":"bad_request"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://" + hc.Addr + "/users")
			req.Header.SetMethod(tc.method)
			req.SetBodyString(tc.body)
			if err := hc.DoTimeout(req, resp, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode() != tc.wantStatus || string(resp.Body()) != tc.wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode(), resp.Body(), tc.wantStatus, tc.wantBody)
			}
		})
	}
}

// TestConcurrentValidate shares one Validator between goroutines (run it
// with -race).
func TestConcurrentValidate(t *testing.T) {
	t.Parallel()
	v := mustNew(t, userSchema)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				valid := i%2 == 0
				body := validUser
				if !valid {
					body = fmt.Sprintf(`{"name":"u%d"}`, i)
				}
				if err := v.Validate([]byte(body)); (err == nil) != valid {
					errs <- fmt.Errorf("Validate(%s) = %v", body, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
