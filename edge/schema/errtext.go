package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// AppendErrorText appends the text KrakenD CE 2.12.1 answers a refused
// body with under router.return_error_msg: "could not validate an empty
// body", encoding/json's decode error, or one "- FIELD: DESCRIPTION" line
// per violation, joined by "\n", with the wording of gojsonschema (the
// validator behind KrakenD's validation/json-schema): "- (root): name is
// required", "- age: Invalid type. Expected: integer, given: string".
//
// The violations come in gojsonschema's order: for each value, its
// combinators (anyOf, oneOf, allOf, not, dependencies, if) first, then its
// type's keywords, then const, enum and format, then string lengths and
// pattern, then the properties of an object. One choice where gojsonschema
// has none: properties, additional properties, pattern properties and
// dependencies are visited in sorted order (gojsonschema walks Go maps, so
// its order changes between KrakenD processes).
//
// It runs only for refused requests on routers that ask for the text, off
// the fast path. body must be one Validate refused.
func (v *Validator) AppendErrorText(dst, body []byte) []byte {
	if v == nil {
		return dst
	}
	if len(body) == 0 {
		return append(dst, "could not validate an empty body"...)
	}
	inst, err := decodeFirst(body)
	if err != nil {
		return append(dst, err.Error()...)
	}
	var r result
	w := walker{doc: v.doc}
	w.walk(&r, v.sch, inst, nil)
	if len(r.errs) == 0 {
		// Only keywords gojsonschema does not know failed
		// (unevaluatedProperties, minContains, ...): the library's own
		// words in the same shape, never an empty text.
		var verr *jsonschema.ValidationError
		if errors.As(v.sch.Validate(inst), &verr) {
			leaves(&r, verr)
			// The library walks maps too: sorted, as above.
			slices.SortStableFunc(r.errs, func(a, b violation) int { return strings.Compare(a.field, b.field) })
		}
	}
	for i, e := range r.errs {
		if i > 0 {
			dst = append(dst, '\n')
		}
		dst = append(dst, "- "...)
		dst = append(dst, e.field...)
		dst = append(dst, ": "...)
		dst = append(dst, e.desc...)
	}
	return dst
}

// leaves adds the innermost violations of e, in the library's words.
func leaves(r *result, e *jsonschema.ValidationError) {
	if len(e.Causes) == 0 {
		if out := e.BasicOutput(); out.Error != nil {
			r.add(e.InstanceLocation, out.Error.String())
		}
		return
	}
	for _, c := range e.Causes {
		leaves(r, c)
	}
}

// decodeFirst decodes the first JSON value of body as KrakenD does
// (encoding/json with UseNumber; whatever follows is not looked at).
func decodeFirst(body []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// result collects violations and gojsonschema's score, which picks the
// "closest" subschema of a failed anyOf, oneOf or contains: +1 for each
// check that ran, -2 for each violation.
type result struct {
	errs  []violation
	score int
}

type violation struct{ field, desc string }

// field is gojsonschema's name for the value at path: "(root)", "name",
// "addr.zip", "items.0".
func field(path []string) string {
	if len(path) == 0 {
		return "(root)"
	}
	return strings.Join(path, ".")
}

func (r *result) add(path []string, desc string) {
	r.errs = append(r.errs, violation{field(path), desc})
	r.score -= 2
}

func (r *result) merge(o *result) {
	r.errs = append(r.errs, o.errs...)
	r.score += o.score
}

// walker holds the schema document, for what the compiled schema does not
// keep: the order of a list of types.
type walker struct{ doc any }

// types is s's list of types in the document's order (gojsonschema prints
// them so), or in the library's when s is not found in the document.
func (w *walker) types(s *jsonschema.Schema) []string {
	want := s.Types.ToStrings()
	ptr, ok := strings.CutPrefix(s.Location, schemaURL+"#")
	if !ok {
		return want
	}
	node := w.doc
	if ptr != "" {
		for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
			tok, err := url.PathUnescape(tok)
			if err != nil {
				return want
			}
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			switch n := node.(type) {
			case map[string]any:
				node = n[tok]
			case []any:
				i, err := strconv.Atoi(tok)
				if err != nil || i < 0 || i >= len(n) {
					return want
				}
				node = n[i]
			default:
				return want
			}
		}
	}
	obj, _ := node.(map[string]any)
	list, _ := obj["type"].([]any)
	if len(list) != len(want) {
		return want
	}
	out := make([]string, len(list))
	for i, t := range list {
		name, _ := t.(string)
		if !slices.Contains(want, name) {
			return want
		}
		out[i] = name
	}
	return out
}

func (w *walker) sub(s *jsonschema.Schema, v any, path []string) *result {
	r := new(result)
	w.walk(r, s, v, path)
	return r
}

// child returns path + tok in a fresh slice (paths are kept by violations
// only as strings, but sibling calls must not share a backing array).
func child(path []string, tok string) []string {
	return append(slices.Clip(path), tok)
}

// walk validates v at path against s, as gojsonschema's validateRecursive.
func (w *walker) walk(r *result, s *jsonschema.Schema, v any, path []string) {
	if s.Bool != nil {
		if !*s.Bool {
			r.add(path, "False always fails validation")
		}
		return
	}
	if s.Ref != nil {
		w.walk(r, s.Ref, v, path)
		if s.DraftVersion < 2019 {
			return // the siblings of $ref are ignored before draft 2019-09
		}
	}
	given, isInt := typeName(v)
	if s.Types != nil {
		want := w.types(s)
		if !slices.Contains(want, given) && !(given == "integer" && slices.Contains(want, "number")) &&
			!(isInt && slices.Contains(want, "integer")) {
			exp := want[0]
			if len(want) > 1 {
				exp = "[" + strings.Join(want, ",") + "]"
			}
			r.add(path, "Invalid type. Expected: "+exp+", given: "+given)
			return
		}
	}
	w.combinators(r, s, v, path)
	switch v := v.(type) {
	case json.Number:
		number(r, s, v, path)
	case []any:
		w.array(r, s, v, path)
	case map[string]any:
		w.object(r, s, v, path)
	}
	common(r, s, v, path)
	if str, ok := v.(string); ok {
		text(r, s, str, path)
	}
	if obj, ok := v.(map[string]any); ok {
		for _, name := range sortedKeys(s.Properties) {
			if pv, ok := obj[name]; ok {
				w.walk(r, s.Properties[name], pv, child(path, name))
			}
		}
	}
	r.score++
}

// typeName is gojsonschema's name for v's type; a number is an integer
// when its value is integral (1.0 included).
func typeName(v any) (name string, isInt bool) {
	switch v := v.(type) {
	case nil:
		return "null", false
	case bool:
		return "boolean", false
	case string:
		return "string", false
	case json.Number:
		if q, ok := new(big.Rat).SetString(string(v)); ok && q.IsInt() {
			return "integer", true
		}
		return "number", false
	case []any:
		return "array", false
	}
	return "object", false
}

// combinators is gojsonschema's validateSchema.
func (w *walker) combinators(r *result, s *jsonschema.Schema, v any, path []string) {
	if len(s.AnyOf) > 0 {
		var best *result
		ok := false
		for _, a := range s.AnyOf {
			sr := w.sub(a, v, path)
			if len(sr.errs) == 0 {
				ok = true
				break
			}
			if best == nil || sr.score > best.score {
				best = sr
			}
		}
		if !ok {
			r.add(path, "Must validate at least one schema (anyOf)")
			r.merge(best)
		}
	}
	if len(s.OneOf) > 0 {
		var best *result
		valid := 0
		for _, o := range s.OneOf {
			sr := w.sub(o, v, path)
			if len(sr.errs) == 0 {
				valid++
			} else if valid == 0 && (best == nil || sr.score > best.score) {
				best = sr
			}
		}
		if valid != 1 {
			r.add(path, "Must validate one and only one schema (oneOf)")
			if valid == 0 {
				r.merge(best)
			}
		}
	}
	if len(s.AllOf) > 0 {
		valid := 0
		for _, a := range s.AllOf {
			sr := w.sub(a, v, path)
			if len(sr.errs) == 0 {
				valid++
			}
			r.merge(sr)
		}
		if valid != len(s.AllOf) {
			r.add(path, "Must validate all the schemas (allOf)")
		}
	}
	if s.Not != nil && len(w.sub(s.Not, v, path).errs) == 0 {
		r.add(path, "Must not validate the schema (not)")
	}
	if obj, ok := v.(map[string]any); ok {
		for _, name := range sortedKeys(obj) {
			switch dep := s.Dependencies[name].(type) {
			case []string:
				missing(r, obj, dep, path)
			case *jsonschema.Schema:
				w.walk(r, dep, v, path)
			}
			if dep, ok := s.DependentRequired[name]; ok {
				missing(r, obj, dep, path)
			}
			if dep, ok := s.DependentSchemas[name]; ok {
				w.walk(r, dep, v, path)
			}
		}
	}
	if s.If != nil {
		ifOK := len(w.sub(s.If, v, path).errs) == 0
		if ifOK && s.Then != nil {
			if sr := w.sub(s.Then, v, path); len(sr.errs) > 0 {
				r.add(path, `Must validate "then" as "if" was valid`)
				r.merge(sr)
			}
		}
		if !ifOK && s.Else != nil {
			if sr := w.sub(s.Else, v, path); len(sr.errs) > 0 {
				r.add(path, `Must validate "else" as "if" was not valid`)
				r.merge(sr)
			}
		}
	}
	r.score++
}

func missing(r *result, obj map[string]any, names []string, path []string) {
	for _, n := range names {
		if _, ok := obj[n]; !ok {
			r.add(path, "Has a dependency on "+n)
		}
	}
}

// common is gojsonschema's validateCommon: const, enum, format.
func common(r *result, s *jsonschema.Schema, v any, path []string) {
	if s.Const != nil {
		if want := normal(*s.Const); normal(v) != want {
			r.add(path, field(path)+" does not match: "+want)
		}
	}
	if s.Enum != nil {
		got := normal(v)
		allowed := make([]string, len(s.Enum.Values))
		found := false
		for i, e := range s.Enum.Values {
			allowed[i] = normal(e)
			found = found || allowed[i] == got
		}
		if !found {
			r.add(path, field(path)+" must be one of the following: "+strings.Join(allowed, ", "))
		}
	}
	if s.Format != nil {
		if str, ok := v.(string); ok && s.Format.Validate(str) != nil {
			r.add(path, "Does not match format '"+s.Format.Name+"'")
		}
	}
	r.score++
}

// normal is gojsonschema's marshalWithoutNumber: v as JSON, with numbers
// through float64 (1.0 reads 1) and object keys sorted.
func normal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	var doc any
	if json.Unmarshal(b, &doc) != nil {
		return string(b)
	}
	b, _ = json.Marshal(doc)
	return string(b)
}

// text is gojsonschema's validateString.
func text(r *result, s *jsonschema.Schema, str string, path []string) {
	n := utf8.RuneCountInString(str)
	if s.MinLength != nil && n < *s.MinLength {
		r.add(path, "String length must be greater than or equal to "+strconv.Itoa(*s.MinLength))
	}
	if s.MaxLength != nil && n > *s.MaxLength {
		r.add(path, "String length must be less than or equal to "+strconv.Itoa(*s.MaxLength))
	}
	if s.Pattern != nil && !s.Pattern.MatchString(str) {
		r.add(path, "Does not match pattern '"+s.Pattern.String()+"'")
	}
	r.score++
}

// num formats a schema number as gojsonschema's templates print it
// (a big.Float made from the exact value, %v).
func num(q *big.Rat) string { return new(big.Float).SetRat(q).Text('g', -1) }

// number is gojsonschema's validateNumber.
func number(r *result, s *jsonschema.Schema, v json.Number, path []string) {
	q, ok := new(big.Rat).SetString(string(v))
	if !ok {
		return
	}
	if m := s.MultipleOf; m != nil && m.Sign() != 0 && !new(big.Rat).Quo(q, m).IsInt() {
		r.add(path, "Must be a multiple of "+num(m))
	}
	if m := s.Maximum; m != nil && q.Cmp(m) > 0 {
		r.add(path, "Must be less than or equal to "+num(m))
	}
	if m := s.ExclusiveMaximum; m != nil && q.Cmp(m) >= 0 {
		r.add(path, "Must be less than "+num(m))
	}
	if m := s.Minimum; m != nil && q.Cmp(m) < 0 {
		r.add(path, "Must be greater than or equal to "+num(m))
	}
	if m := s.ExclusiveMinimum; m != nil && q.Cmp(m) <= 0 {
		r.add(path, "Must be greater than "+num(m))
	}
	r.score++
}

// array is gojsonschema's validateArray.
func (w *walker) array(r *result, s *jsonschema.Schema, arr []any, path []string) {
	var tuple []*jsonschema.Schema
	var rest any // additional items: nil, bool or *Schema
	switch items := s.Items.(type) {
	case *jsonschema.Schema:
		rest = items
	case []*jsonschema.Schema:
		tuple, rest = items, s.AdditionalItems
	}
	if s.PrefixItems != nil {
		tuple = s.PrefixItems
	}
	if s.Items2020 != nil {
		rest = s.Items2020
	}
	for i := 0; i < len(tuple) && i < len(arr); i++ {
		r.merge(w.sub(tuple[i], arr[i], child(path, strconv.Itoa(i))))
	}
	if len(tuple) < len(arr) {
		switch rest := rest.(type) {
		case bool:
			if !rest {
				r.add(path, "No additional items allowed on array")
			}
		case *jsonschema.Schema:
			for i := len(tuple); i < len(arr); i++ {
				r.merge(w.sub(rest, arr[i], child(path, strconv.Itoa(i))))
			}
		}
	}
	if s.MinItems != nil && len(arr) < *s.MinItems {
		r.add(path, "Array must have at least "+strconv.Itoa(*s.MinItems)+" items")
	}
	if s.MaxItems != nil && len(arr) > *s.MaxItems {
		r.add(path, "Array must have at most "+strconv.Itoa(*s.MaxItems)+" items")
	}
	if s.UniqueItems {
		seen := make(map[string]int, len(arr))
		for j, item := range arr {
			k := normal(item)
			if i, ok := seen[k]; ok {
				r.add(path, "array items["+strconv.Itoa(i)+","+strconv.Itoa(j)+"] must be unique")
			}
			seen[k] = j
		}
	}
	if s.Contains != nil {
		var best *result
		ok := false
		for i, item := range arr {
			sr := w.sub(s.Contains, item, child(path, strconv.Itoa(i)))
			if len(sr.errs) == 0 {
				ok = true
				break
			}
			if best == nil || sr.score > best.score {
				best = sr
			}
		}
		if !ok {
			r.add(path, "At least one of the items must match")
			if best != nil {
				r.merge(best)
			}
		}
	}
	r.score++
}

// object is gojsonschema's validateObject.
func (w *walker) object(r *result, s *jsonschema.Schema, obj map[string]any, path []string) {
	if s.MinProperties != nil && len(obj) < *s.MinProperties {
		r.add(path, "Must have at least "+strconv.Itoa(*s.MinProperties)+" properties")
	}
	if s.MaxProperties != nil && len(obj) > *s.MaxProperties {
		r.add(path, "Must have at most "+strconv.Itoa(*s.MaxProperties)+" properties")
	}
	for _, name := range s.Required {
		if _, ok := obj[name]; ok {
			r.score++
		} else {
			r.add(path, name+" is required")
		}
	}
	patterns := make([]jsonschema.Regexp, 0, len(s.PatternProperties))
	for re := range s.PatternProperties {
		patterns = append(patterns, re)
	}
	slices.SortFunc(patterns, func(a, b jsonschema.Regexp) int { return strings.Compare(a.String(), b.String()) })
	for _, name := range sortedKeys(obj) {
		_, declared := s.Properties[name]
		matched := false
		for _, re := range patterns {
			if re.MatchString(name) {
				matched = true
				r.merge(w.sub(s.PatternProperties[re], obj[name], child(path, name)))
			}
		}
		if matched {
			r.score++
		}
		if declared || matched {
			continue
		}
		switch ap := s.AdditionalProperties.(type) {
		case bool:
			if !ap {
				r.add(path, "Additional property "+name+" is not allowed")
			}
		case *jsonschema.Schema:
			r.merge(w.sub(ap, obj[name], child(path, name)))
		}
	}
	if s.PropertyNames != nil {
		for _, name := range sortedKeys(obj) {
			if sr := w.sub(s.PropertyNames, name, path); len(sr.errs) > 0 {
				r.add(path, `Property name of "`+name+`" does not match`)
				r.merge(sr)
			}
		}
	}
	r.score++
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
