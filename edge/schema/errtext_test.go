package schema_test

import (
	"testing"
)

// TestErrorText: the return_error_msg texts, as KrakenD CE 2.12.1 answered
// the same schemas and bodies (recorded on loopback). KrakenD's order
// between the properties of an object changes from one process to the
// next; ours is sorted, and the recordings below are written in that order.
func TestErrorText(t *testing.T) {
	t.Parallel()
	const person = `{"type":"object","required":["name","age"],"properties":{
		"name":{"type":"string","minLength":3,"maxLength":5,"pattern":"^[a-z]+$"},
		"age":{"type":"integer","minimum":0,"maximum":150},
		"email":{"type":"string","format":"email"},
		"tags":{"type":"array","minItems":1,"maxItems":2,"uniqueItems":true,"items":{"type":"string"}},
		"color":{"enum":["red","green",1,null]},
		"kind":{"const":"x"},
		"n":{"type":"number","multipleOf":2,"exclusiveMinimum":0.5,"exclusiveMaximum":10},
		"big":{"type":"number","maximum":1e21},
		"frac":{"type":"number","minimum":2.5}}}`
	const draft7 = `{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"pos":{"type":"integer","minimum":1}},
		"type":"object","properties":{"p":{"$ref":"#/definitions/pos"},
		"t":{"type":"array","items":[{"type":"string"},{"type":"integer"}],"additionalItems":false},
		"c":{"type":"array","contains":{"type":"string","minLength":2}}},
		"if":{"required":["a"]},"then":{"required":["b"]},"else":{"required":["c"]}}`
	const mixed = `{"type":"object","properties":{
		"x":{"anyOf":[{"type":"object","required":["a","b"]},{"type":"object","required":["a","b","c","d"],"properties":{"a":{"type":"string"}}}]},
		"m":{"type":["string","null","integer"]},"e":{"enum":[{"b":1,"a":[1.0,2]},1.50]},"d.o":{"type":"string"},
		"big":{"type":"integer","maximum":0.333333333333},"u":{"type":"string","maxLength":2}}}`
	tests := []struct {
		name, schema, body, want string
	}{
		{"empty body", person, ``, `could not validate an empty body`},
		{"whitespace", person, `   `, `EOF`},
		{"not JSON", person, `{bad`, `invalid character 'b' looking for beginning of object key string`},
		{"truncated", person, `{"name":`, `unexpected EOF`},
		{"root type", person, `[1,2]`, `- (root): Invalid type. Expected: object, given: array`},
		{"null", person, `null`, `- (root): Invalid type. Expected: object, given: null`},
		{"required, in the schema's order", person, `{}`, "- (root): name is required\n- (root): age is required"},
		{"string and type", person, `{"name":"ab","age":"x"}`,
			"- age: Invalid type. Expected: integer, given: string\n- name: String length must be greater than or equal to 3"},
		{"every keyword of a value", person, `{"name":"abcdef1","age":-1}`,
			"- age: Must be greater than or equal to 0\n- name: String length must be less than or equal to 5\n- name: Does not match pattern '^[a-z]+$'"},
		{"numbers, formats, enum, const", person, `{"name":"abc","age":200,"email":"nope","tags":[],"color":"blue","kind":"y","n":3,"big":2e21,"frac":1}`,
			"- age: Must be less than or equal to 150\n- big: Must be less than or equal to 1e+21\n" +
				"- color: color must be one of the following: \"red\", \"green\", 1, null\n- email: Does not match format 'email'\n" +
				"- frac: Must be greater than or equal to 2.5\n- kind: kind does not match: \"x\"\n" +
				"- n: Must be a multiple of 2\n- tags: Array must have at least 1 items"},
		{"arrays", person, `{"name":"abc","age":1.5,"tags":["a","a","b"],"n":11,"color":{"a":1}}`,
			"- age: Invalid type. Expected: integer, given: number\n- color: color must be one of the following: \"red\", \"green\", 1, null\n" +
				"- n: Must be a multiple of 2\n- n: Must be less than 10\n" +
				"- tags: Array must have at most 2 items\n- tags: array items[0,1] must be unique"},
		{"items and objects in const", person, `{"name":"abc","age":1,"tags":[1,"a"],"n":0.25,"kind":{"b":[1,2]}}`,
			"- kind: kind does not match: \"x\"\n- n: Must be a multiple of 2\n- n: Must be greater than 0.5\n" +
				"- tags.0: Invalid type. Expected: string, given: integer"},
		{"additional properties", `{"type":"object","additionalProperties":false,"properties":{"a":{}}}`, `{"a":1,"c":3,"b":2}`,
			"- (root): Additional property b is not allowed\n- (root): Additional property c is not allowed"},
		{"anyOf: the first closest", `{"anyOf":[{"required":["a"]},{"required":["b"]}]}`, `{"c":1}`,
			"- (root): Must validate at least one schema (anyOf)\n- (root): a is required"},
		{"oneOf", `{"oneOf":[{"type":"string"},{"type":"integer"}]}`, `1.5`,
			"- (root): Must validate one and only one schema (oneOf)\n- (root): Invalid type. Expected: string, given: number"},
		{"array items", `{"type":"array","items":{"type":"object","required":["id"]}}`, `[{"id":1},{},{"x":2}]`,
			"- 1: id is required\n- 2: id is required"},
		{"nested object", `{"type":"object","properties":{"addr":{"type":"object","required":["city"],"properties":{"zip":{"type":"string"}}}}}`, `{"addr":{"zip":1}}`,
			"- addr: city is required\n- addr.zip: Invalid type. Expected: string, given: integer"},
		{"min properties", `{"type":"object","minProperties":2,"maxProperties":3}`, `{}`, `- (root): Must have at least 2 properties`},
		{"allOf then not", `{"type":["object","null"],"not":{"required":["x"]},"allOf":[{"required":["y"]},{"required":["z"]}]}`, `{"x":1}`,
			"- (root): y is required\n- (root): z is required\n- (root): Must validate all the schemas (allOf)\n- (root): Must not validate the schema (not)"},
		{"dependencies, patterns, property names", `{"type":"object","dependencies":{"a":["b"]},"propertyNames":{"maxLength":3},"patternProperties":{"^p":{"type":"integer"}}}`,
			`{"a":1,"pq":"x","long":1}`,
			"- (root): Has a dependency on b\n- pq: Invalid type. Expected: integer, given: string\n" +
				"- (root): Property name of \"long\" does not match\n- (root): String length must be less than or equal to 3"},
		{"draft-07 if/then, $ref, tuple, contains", draft7, `{"p":0,"t":["a","b",3],"c":[1,"x"],"a":1}`,
			"- (root): Must validate \"then\" as \"if\" was valid\n- (root): b is required\n" +
				"- c: At least one of the items must match\n- c.1: String length must be greater than or equal to 2\n" +
				"- p: Must be greater than or equal to 1\n- t.1: Invalid type. Expected: integer, given: string\n" +
				"- t: No additional items allowed on array"},
		{"draft-07 else", draft7, `{"p":"x","t":[1]}`,
			"- (root): Must validate \"else\" as \"if\" was not valid\n- (root): c is required\n" +
				"- p: Invalid type. Expected: integer, given: string\n- t.0: Invalid type. Expected: string, given: integer"},
		{"anyOf best by score, type lists, enum objects, dotted names", mixed,
			`{"x":{"a":1},"m":1.5,"e":{"a":[1,2],"b":2},"d.o":1,"big":5,"u":"ééé"}`,
			"- big: Must be less than or equal to 0.333333333333\n- d.o: Invalid type. Expected: string, given: integer\n" +
				"- e: e must be one of the following: {\"a\":[1,2],\"b\":1}, 1.5\n" +
				"- m: Invalid type. Expected: [string,null,integer], given: number\n" +
				"- u: String length must be less than or equal to 2\n" +
				"- x: Must validate at least one schema (anyOf)\n- x: b is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := mustNew(t, tc.schema)
			if v.Validate([]byte(tc.body)) == nil {
				t.Fatalf("Validate(%q) accepted the body", tc.body)
			}
			if got := string(v.AppendErrorText(nil, []byte(tc.body))); got != tc.want {
				t.Errorf("text for %q:\n%s\nwant:\n%s", tc.body, got, tc.want)
			}
		})
	}
}

// TestErrorTextUnknownToKrakenD: a keyword gojsonschema does not have
// (KrakenD would not check it) still gets a line per violation, in the
// library's words.
func TestErrorTextUnknownToKrakenD(t *testing.T) {
	t.Parallel()
	v := mustNew(t, `{"type":"object","properties":{"a":{"type":"object","unevaluatedProperties":false}}}`)
	body := []byte(`{"a":{"x":1,"y":2}}`)
	if v.Validate(body) == nil {
		t.Fatal("body accepted")
	}
	const want = "- a.x: false schema\n- a.y: false schema"
	if got := string(v.AppendErrorText(nil, body)); got != want {
		t.Errorf("text:\n%s\nwant:\n%s", got, want)
	}
}
