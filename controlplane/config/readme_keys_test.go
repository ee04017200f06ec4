package config

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var updateREADME = flag.Bool("update-readme", false, "add the missing rows to README.md's per-key table (keys:begin/end)")

// keyRow is one row of the README's per-key table.
type keyRow struct {
	level, ns, key string // ns "" for the core (non-extra_config) keys
	status, why    string
}

func (r keyRow) id() string { return r.level + " " + r.ns + " " + r.key }

var martianTypeKey = regexp.MustCompile(`\["([A-Za-z]+\.[A-Za-z]+)"\]`)

// rowOf maps a schematic path the decoder accepts to its table row: the
// level, the namespace and the key below it. A modifier/martian key is the
// modifier type it belongs to (its fields are martian's, listed in the
// martian section). ok is false for paths the namespace table covers (a
// namespace itself) and for comment keys.
func rowOf(s string) (r keyRow, ok bool) {
	switch {
	case s == "endpoints":
		return keyRow{level: "service", key: s}, true
	case s == "endpoints[].backend":
		return keyRow{level: "endpoint", key: "backend"}, true
	case strings.HasPrefix(s, "endpoints[].backend[]."):
		r.level, s = "backend", strings.TrimPrefix(s, "endpoints[].backend[].")
	case strings.HasPrefix(s, "endpoints[]."):
		r.level, s = "endpoint", strings.TrimPrefix(s, "endpoints[].")
	default:
		r.level = "service"
	}
	if rest, found := strings.CutPrefix(s, `extra_config["`); found {
		end := strings.Index(rest, `"]`)
		if end < 0 {
			return r, false
		}
		r.ns, s = rest[:end], strings.TrimPrefix(rest[end+2:], ".")
		if s == "" {
			return r, false // the namespace: see TestREADMENamespaceTable
		}
		if r.ns == "modifier/martian" {
			m := martianTypeKey.FindAllStringSubmatch(s, -1)
			if len(m) == 0 {
				return r, false
			}
			s = m[len(m)-1][1]
		}
	}
	if s == "extra_config" || s == "" {
		return r, false
	}
	if last := splitPath(s); len(last) > 0 && isCommentKey(last[len(last)-1].name) {
		return r, false
	}
	r.key = s
	return r, true
}

// keyTableFacts runs the key corpus: every row the decoder accepts and,
// for each, the first no_effect warning the corpus produced at it.
func keyTableFacts(t *testing.T) (accepted map[string]keyRow, warned map[string]string) {
	t.Helper()
	accepted, warned = map[string]keyRow{}, map[string]string{}
	for _, file := range keyCorpus(t) {
		content, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		root, err := parseDocument(file, content)
		if err != nil {
			continue
		}
		d := &decoder{positions: map[string]position{}, accepted: map[string]bool{}}
		d.service(root)
		for k := range d.accepted {
			if r, ok := rowOf(k); ok {
				accepted[r.id()] = r
			}
		}
		c, err := Compile(file, content)
		if err != nil {
			continue
		}
		for _, w := range c.Warnings {
			if w.GetKind() != KindNoEffect {
				continue
			}
			if r, ok := rowOf(string(schematic(path(w.GetPath())))); ok {
				if _, seen := warned[r.id()]; !seen {
					detail := strings.TrimPrefix(w.GetDetail(), "accepted but has no effect: ")
					if i := strings.Index(detail, " (line "); i >= 0 {
						detail = detail[:i]
					}
					warned[r.id()] = detail
				}
			}
		}
	}
	return accepted, warned
}

const keysBegin, keysEnd = "<!-- keys:begin", "<!-- keys:end -->"

// readKeyTable parses the README's per-key table.
func readKeyTable(t *testing.T, text string) (rows map[string]keyRow, head, tail string) {
	t.Helper()
	i, j := strings.Index(text, keysBegin), strings.Index(text, keysEnd)
	if i < 0 || j < i {
		t.Fatal("README.md has no keys:begin/end table")
	}
	nl := strings.IndexByte(text[i:], '\n')
	head, tail = text[:i+nl+1], text[j:]
	rows = map[string]keyRow{}
	for _, line := range strings.Split(text[i+nl+1:j], "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 7 || !strings.Contains(cells[3], "`") {
			continue
		}
		ns := strings.Trim(strings.TrimSpace(cells[2]), "`")
		if ns == "—" {
			ns = ""
		}
		r := keyRow{level: strings.TrimSpace(cells[1]), ns: ns, key: strings.Trim(strings.TrimSpace(cells[3]), "`"),
			status: strings.TrimSpace(cells[4]), why: strings.TrimSpace(strings.Join(cells[5:len(cells)-1], "|"))}
		if _, dup := rows[r.id()]; dup {
			t.Errorf("README key table: %s listed twice", r.id())
		}
		rows[r.id()] = r
	}
	return rows, head, tail
}

var levelOrder = map[string]int{"service": 0, "endpoint": 1, "backend": 2}

func writeKeyTable(rows map[string]keyRow) string {
	list := make([]keyRow, 0, len(rows))
	for _, r := range rows {
		list = append(list, r)
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.level != b.level {
			return levelOrder[a.level] < levelOrder[b.level]
		}
		if a.ns != b.ns {
			return a.ns < b.ns
		}
		return a.key < b.key
	})
	var b strings.Builder
	b.WriteString("| level | namespace | key | status | why |\n|---|---|---|---|---|\n")
	for _, r := range list {
		ns := "—"
		if r.ns != "" {
			ns = "`" + r.ns + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | `%s` | %s | %s |\n", r.level, ns, r.key, r.status, strings.ReplaceAll(r.why, "|", "/"))
	}
	return b.String()
}

// TestREADMEKeyTable keeps the README's per-key table in step with the
// decoder: every key the decoder accepts (walked over the key corpus, as
// TestEveryAcceptedKeyHasAnEffect does) has a row; a row is "supported",
// "warned" (the corpus produces a no_effect warning at the key: the why
// says when) or "refused" (the decoder does not accept the key); no row
// names a key that does not exist. To add rows for new keys:
//
//	go test ./controlplane/config -run TestREADMEKeyTable -update-readme
//
// then read the new rows (a warned row's why is the warning's text).
func TestREADMEKeyTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows, head, tail := readKeyTable(t, string(b))
	accepted, warned := keyTableFacts(t)
	if *updateREADME {
		for id, r := range accepted {
			if _, ok := rows[id]; ok {
				continue
			}
			r.status = "supported"
			if why, ok := warned[id]; ok {
				r.status, r.why = "warned", why
			}
			rows[id] = r
		}
		if err := os.WriteFile("../../README.md", []byte(head+writeKeyTable(rows)+tail), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for id := range accepted {
		if _, ok := rows[id]; !ok {
			t.Errorf("README key table: no row for %s (accepted by the decoder; run with -update-readme)", id)
		}
	}
	for id, r := range rows {
		_, isAccepted := accepted[id]
		_, isWarned := warned[id]
		switch r.status {
		case "supported":
			if !isAccepted {
				t.Errorf("README key table: %s is %q but the decoder does not accept it", id, r.status)
			}
			if isWarned {
				t.Errorf("README key table: %s is %q but the corpus warns it has no effect (%s): make it warned", id, r.status, warned[id])
			}
		case "warned":
			if !isAccepted {
				t.Errorf("README key table: %s is warned but the decoder does not accept it", id)
			}
			if !isWarned {
				t.Errorf("README key table: %s is warned but no corpus file gets a no_effect warning at it", id)
			}
			if r.why == "" {
				t.Errorf("README key table: warned %s says no why", id)
			}
			// The telemetry rows say the warning's own reason, so they
			// cannot go stale when a key starts (or stops) having an effect.
			if strings.HasPrefix(r.ns, "telemetry/") && isWarned && r.why != warned[id] {
				t.Errorf("README key table: warned %s says %q, the warning says %q", id, r.why, warned[id])
			}
		case "refused":
			if isAccepted {
				t.Errorf("README key table: %s is refused but the decoder accepts it", id)
			}
			if r.why == "" {
				t.Errorf("README key table: refused %s says no why", id)
			}
		default:
			t.Errorf("README key table: %s has status %q (want supported, warned or refused)", id, r.status)
		}
	}
	if len(accepted) < 200 {
		t.Errorf("only %d keys accepted over the corpus: it did not load", len(accepted))
	}
}

// TestREADMEKeyTableRefused: the refused rows are refused by the decoder
// with a violation at the key (not just absent from the corpus).
func TestREADMEKeyTableRefused(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows, _, _ := readKeyTable(t, string(b))
	for _, r := range rows {
		if r.status != "refused" || r.ns == "modifier/martian" {
			continue
		}
		doc := refusedKeyDoc(r)
		if doc == "" {
			t.Errorf("refused %s: no document shape for that level", r.id())
			continue
		}
		_, err := Compile("refused.json", []byte(doc))
		if err == nil || !strings.Contains(err.Error(), r.key) {
			t.Errorf("refused %s: compiling %s gave %v, want a violation naming the key", r.id(), doc, err)
		}
	}
}

// refusedKeyDoc is a minimal document setting the row's key (a top-level
// key of its namespace or level) to true.
func refusedKeyDoc(r keyRow) string {
	member := fmt.Sprintf(`%q: true`, r.key)
	if r.ns != "" {
		member = fmt.Sprintf(`"extra_config": {%q: {%s}}`, r.ns, member)
	}
	switch r.level {
	case "service":
		return conf(member, ep("/a", ""))
	case "endpoint":
		return conf("", ep("/a", member))
	case "backend":
		return conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", `+member+`}]}`)
	}
	return ""
}
