// Package response decodes, manipulates, merges and renders backend response
// bodies with KrakenD CE (lura) semantics, without encoding/json and without
// per-request allocations once a [Scratch] is warm.
//
// The pipeline for one endpoint is:
//
//	s := response.AcquireScratch(len(backends))
//	defer response.ReleaseScratch(s)
//	// per backend i (may run concurrently, one goroutine per slot):
//	v, err := formatter[i].Decode(s, i, body)   // backend "encoding" + is_collection
//	v = formatter[i].Apply(s, i, v)              // flatmap | target, allow/deny, mapping, group
//	// then, on ONE goroutine, after every slot goroutine is done:
//	out := response.Merge(s, parts)              // shallow, later part wins
//	out = endpointFlatmap.Apply(s, out)          // only when the endpoint has >1 backend
//	out = static.Apply(s, out)                   // when static.Match(...)
//	body, contentType := s.Render(output, out, accept)
//
// Values are github.com/valyala/fastjson values living in the Scratch: the
// per-slot fastjson.Parser and Arena own every node, so nothing escapes to the
// heap. Number literals are kept exactly as the backend wrote them.
//
// Everything built from a snapshot ([Formatter], [Flatmap], [Static],
// [Output]) is immutable after construction and safe for concurrent use. A
// [Scratch] is not: see its doc for the exact rules.
//
// Deliberate differences from KrakenD (lura v2.14, krakend-xml, gin):
//   - Merge is deterministic: on a key collision the later backend in
//     declaration order wins (KrakenD: whichever answered last).
//   - Rendered JSON keeps object keys in source/merge order (KrakenD sorts
//     them, as it renders Go maps); strings are escaped exactly like
//     encoding/json. Duplicate keys in a backend object are kept unless a
//     manipulation touches them (KrakenD keeps the last one).
//   - mapping runs in sorted source-key order, so chained or colliding
//     renames always give the same one of KrakenD's possible results.
//   - Trailing data after a JSON body is an error (KrakenD ignores it).
//   - Sequential placeholders render objects as compact JSON, not Go's
//     map[k:v] syntax.
//   - negotiate renders XML with the krakend-xml rules (lura's negotiated
//     XML renders only Data["content"] and fails on objects) and also maps
//     text/xml to XML and application/yaml, application/x-yaml, text/yaml to
//     YAML; YAML numbers are plain (KrakenD quotes json.Number values).
//   - flatmap: see flatmap.go (moved values win key collisions; append
//     relabels the destination array).
//
// Kept on purpose, because clients see them: allow never descends into
// arrays (a path through an array drops the array), deny ignores arrays,
// a rename onto its own name deletes the key, a flatmap that empties an
// object yields null, target on a missing or non-object path yields {}.
//
// This package must not import anything from edge/plan, edge/aggregate,
// edge/proxy, edge/server or controlplane; it depends only on the generated
// proto package and fastjson.
package response
