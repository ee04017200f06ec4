package config

import (
	"bytes"
	"path/filepath"
	"strings"
)

// Resolve returns the document as it will be compiled with env: when a
// KRAKEND_* variable overrides a top-level key, the result is the document
// in JSON (members in file order, comment keys kept) with the overrides
// applied and filename's extension changed to .json; otherwise filename and
// content come back unchanged. A document that does not parse also comes
// back unchanged, so compiling it reports the syntax error where it is.
//
// gwctl resolves before it pushes, so the control plane stores the
// configuration as it runs rather than a file whose meaning depends on the
// pusher's environment.
func Resolve(filename string, content []byte, env []string) (string, []byte, error) {
	if !hasEnvOverride(env) {
		return filename, content, nil
	}
	root, err := parseDocument(filename, content)
	if err != nil {
		return filename, content, nil
	}
	d := &decoder{}
	before := canonicalJSON(root)
	applyEnv(d, root, env)
	if bytes.Equal(before, canonicalJSON(root)) {
		return filename, content, nil
	}
	var buf bytes.Buffer
	writeOrdered(&buf, root, "")
	buf.WriteByte('\n')
	return strings.TrimSuffix(filename, filepath.Ext(filename)) + ".json", buf.Bytes(), nil
}

func hasEnvOverride(env []string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, envPrefix) {
			return true
		}
	}
	return false
}

// writeOrdered renders n as indented JSON keeping object members in
// document order.
func writeOrdered(buf *bytes.Buffer, n *node, indent string) {
	inner := indent + "  "
	switch n.kind {
	case typeArray:
		if len(n.items) == 0 {
			buf.WriteString("[]")
			return
		}
		buf.WriteString("[\n")
		for i, item := range n.items {
			if i > 0 {
				buf.WriteString(",\n")
			}
			buf.WriteString(inner)
			writeOrdered(buf, item, inner)
		}
		buf.WriteString("\n" + indent + "]")
	case typeObject:
		if len(n.members) == 0 {
			buf.WriteString("{}")
			return
		}
		buf.WriteString("{\n")
		for i, m := range n.members {
			if i > 0 {
				buf.WriteString(",\n")
			}
			buf.WriteString(inner)
			writeJSONString(buf, m.key)
			buf.WriteString(": ")
			writeOrdered(buf, m.val, inner)
		}
		buf.WriteString("\n" + indent + "}")
	case typeNumber:
		buf.WriteString(n.text)
	default:
		writeCanonical(buf, n)
	}
}
