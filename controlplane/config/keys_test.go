package config

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// keyCorpus is every configuration the key walk runs over: the package's
// corpus and testdata/allkeys.json, which sets the keys the others leave out.
func keyCorpus(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"testdata/*.json", "testdata/*.yaml", "testdata/formats/*"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	return files
}

// TestEveryAcceptedKeyHasAnEffect walks every key the decoder accepts and
// fails when one changes neither the snapshot nor a warning. For each key
// set in a corpus file that compiles, it removes the key and, separately,
// changes its value; the key has an effect when either changes the
// snapshot's sha256 or makes the file invalid, or when the file compiles
// with a warning at (or under) the key's path. Every key the decoder
// accepts must be set somewhere in the corpus, so a key added later
// without a fixture fails here too.
func TestEveryAcceptedKeyHasAnEffect(t *testing.T) {
	t.Parallel()
	accepted := map[string]bool{}
	present := map[string]bool{}
	effective := map[string]bool{}
	inert := map[string]string{} // schematic path -> where it was seen inert
	for _, file := range keyCorpus(t) {
		content, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		full, err := CompileWith(file, content, Options{ReadFile: OSReadFile})
		if err != nil {
			continue // bad.json and friends: nothing to compare against
		}
		root, err := parseDocument(file, content)
		if err != nil {
			t.Fatal(err)
		}
		d := &decoder{positions: map[string]position{}, accepted: map[string]bool{}}
		d.service(root)
		for k := range d.accepted {
			accepted[k] = true
		}
		w := keyWalk{root: root, full: full, file: file}
		w.object(root, "", func(p path, parent *node, idx int) {
			s := string(schematic(p))
			present[s] = true
			if !d.accepted[s] {
				return // raw data (static.data, mapping, schemas): not a key
			}
			if w.hasEffect(p, parent, idx) {
				effective[s] = true
			} else if _, seen := inert[s]; !seen {
				inert[s] = file + ": " + string(p)
			}
		})
	}
	var failures []string
	for s, where := range inert {
		if !effective[s] {
			failures = append(failures, s+" (e.g. "+where+"): changes neither the snapshot nor a warning")
		}
	}
	for s := range accepted {
		if last := splitPath(s); isCommentKey(last[len(last)-1].name) {
			continue // "$schema": a comment key KrakenD's schema names
		}
		if !present[s] {
			failures = append(failures, s+": accepted but set nowhere in the corpus (add it to testdata/allkeys.json)")
		}
	}
	sort.Strings(failures)
	for _, f := range failures {
		t.Error(f)
	}
	if len(effective) < 100 {
		t.Errorf("only %d keys checked: the corpus did not load", len(effective))
	}
}

// keyWalk changes one member of a document at a time and compiles it.
type keyWalk struct {
	root *node
	full *Compiled
	file string
}

// object calls visit for every non-comment member below n, depth first,
// with the member's path as the decoder writes it (namespaces under their
// v3 name) and where the member is.
func (w *keyWalk) object(n *node, p path, visit func(p path, parent *node, idx int)) {
	switch n.kind {
	case typeObject:
		inExtra := strings.HasSuffix(string(p), "extra_config")
		for i, m := range n.members {
			if isCommentKey(m.key) {
				continue
			}
			mp := p.field(m.key)
			if inExtra {
				mp = p.key(normalizeNamespace(m.key))
			}
			visit(mp, n, i)
			w.object(m.val, mp, visit)
		}
	case typeArray:
		for i, item := range n.items {
			w.object(item, p.index(i), visit)
		}
	}
}

// hasEffect reports whether the member at p matters (see the test).
func (w *keyWalk) hasEffect(p path, parent *node, idx int) bool {
	for _, warn := range w.full.Warnings {
		wp := warn.GetPath()
		if wp == string(p) || strings.HasPrefix(wp, string(p)+".") || strings.HasPrefix(wp, string(p)+"[") {
			return true
		}
	}
	members := parent.members
	// Removed.
	parent.members = append(append([]member(nil), members[:idx]...), members[idx+1:]...)
	changed := w.differs()
	parent.members = members
	if changed {
		return true
	}
	// Changed.
	old := members[idx].val
	for _, v := range mutations(old) {
		members[idx].val = v
		changed = w.differs()
		members[idx].val = old
		if changed {
			return true
		}
	}
	return false
}

// differs compiles the current document: true when it is invalid or its
// snapshot differs from the original's.
func (w *keyWalk) differs() bool {
	var buf bytes.Buffer
	writeOrdered(&buf, w.root, "")
	c, err := CompileWith("walk.json", buf.Bytes(), Options{ReadFile: OSReadFile})
	return err != nil || c.SHA256 != w.full.SHA256
}

// mutations returns other values of the same type as n: a flipped boolean,
// other numbers, a longer or shorter duration, another string, a list with
// one more or one less item.
func mutations(n *node) []*node {
	switch n.kind {
	case typeBool:
		return []*node{{kind: typeBool, boolean: !n.boolean}}
	case typeNumber:
		f, _ := strconv.ParseFloat(n.text, 64)
		return []*node{
			{kind: typeNumber, text: strconv.FormatFloat(f*2+1, 'f', -1, 64)},
			{kind: typeNumber, text: strconv.FormatFloat(f/2, 'f', -1, 64)},
		}
	case typeString:
		if d, err := time.ParseDuration(n.text); err == nil {
			return []*node{{kind: typeString, text: (d*2 + time.Second).String()}, {kind: typeString, text: (d / 2).String()}}
		}
		return []*node{{kind: typeString, text: n.text + "x"}, {kind: typeString, text: ""}}
	case typeArray:
		out := []*node{{kind: typeArray}}
		if len(n.items) == 0 {
			out = append(out,
				&node{kind: typeArray, items: []*node{{kind: typeString, text: "x"}}},
				&node{kind: typeArray, items: []*node{{kind: typeObject}}})
		}
		if len(n.items) > 0 {
			out = append(out, &node{kind: typeArray, items: append(append([]*node(nil), n.items...), n.items[0])})
			out = append(out, &node{kind: typeArray, items: n.items[:len(n.items)-1]})
		}
		return out
	}
	return nil
}
