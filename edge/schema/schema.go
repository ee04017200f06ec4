// Package schema validates request bodies against an endpoint's
// `validation/json-schema` document (KrakenD's krakend-jsonschema
// semantics), with github.com/santhosh-tekuri/jsonschema/v6.
//
// New compiles the schema once per plan. Drafts 4, 6, 7, 2019-09 and
// 2020-12 are supported, chosen by the document's "$schema"; a document
// without one is compiled as draft 2020-12 (the library's current default,
// pinned here so that a library upgrade cannot change it silently).
// "format" is always asserted (as gojsonschema, KrakenD's original
// validator, did): a body with "email": "x" fails a "format": "email"
// property. References may only point inside the document or to the
// standard meta-schemas: nothing is ever loaded from files or the network.
//
// Validate checks one body. KrakenD answers 400 for a missing body and for
// an invalid one; so does the edge. The error Validate returns (with the
// failing instance and schema locations) is for logs. With
// router.return_error_msg KrakenD sends its validator's own words, and
// AppendErrorText writes them (gojsonschema's texts, see there).
//
// Call Validate before the endpoint's backends are called (KrakenD runs it
// as a proxy middleware, after the router, JWT validation and rate
// limiting). The body is read from the fasthttp request, which already
// holds it in memory, so nothing needs re-injecting.
//
// Import rule: schema depends only on the jsonschema library; it must not
// import edge/plan, edge/server, edge/watch, edge/aggregate, edge/proxy or
// anything under controlplane.
package schema

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemaURL is the location the endpoint's schema is compiled at. A
// relative "$ref" resolves against it to another URL of the reserved
// .invalid domain, which the loader refuses: New fails. (A URN base would
// resolve "other.json" to the schema itself, a reference cycle that fails
// every body at request time instead.)
const schemaURL = "https://apigw.invalid/validation/json-schema"

// ErrEmptyBody is returned by Validate for a request without a body
// (KrakenD: "could not validate an empty body").
var ErrEmptyBody = errors.New("json-schema: empty body")

// Validator validates request bodies against one compiled schema. It is
// immutable and safe for concurrent use. A nil *Validator is valid and
// accepts everything (the endpoint has no schema).
type Validator struct {
	sch *jsonschema.Schema
	doc any // the schema document, for AppendErrorText
}

// New compiles the schema document doc (raw JSON). It returns nil (and no
// error) when doc is empty: the endpoint has no schema. An error means the
// document is not valid JSON, not a valid schema of its draft, or refers
// to a document that cannot be loaded; the caller reports it as a build
// violation.
func New(doc []byte) (*Validator, error) {
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil, nil
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("json-schema: decode schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, v); err != nil {
		return nil, fmt.Errorf("json-schema: %w", err)
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		return nil, fmt.Errorf("json-schema: compile: %w", err)
	}
	return &Validator{sch: sch, doc: v}, nil
}

// Validate checks body against the schema. It returns ErrEmptyBody for an
// empty body, and otherwise an error when body does not start with a JSON
// value or the value violates the schema. As in KrakenD, only the first
// JSON value is validated: what follows it is not looked at (and is
// forwarded with the rest of the body). The error is for logs;
// AppendErrorText has KrakenD's words for the client. body is not
// retained.
func (v *Validator) Validate(body []byte) error {
	if v == nil {
		return nil
	}
	if len(body) == 0 {
		return ErrEmptyBody
	}
	inst, err := decodeFirst(body)
	if err != nil {
		return fmt.Errorf("json-schema: decode body: %w", err)
	}
	if err := v.sch.Validate(inst); err != nil {
		return fmt.Errorf("json-schema: %w", err)
	}
	return nil
}

// noLoader refuses every URL: a schema must be self-contained (plus the
// embedded meta-schemas, which the library resolves without a loader).
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("loading %q is not allowed: the schema must be self-contained", url)
}
