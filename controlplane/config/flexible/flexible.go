// Package flexible renders KrakenD Flexible Config templates: the FC_*
// environment variables, Go text/template with the sprig functions,
// "marshal", "include", settings files as variables named after their file
// and sub-templates from a folder, read as KrakenD CE 2.12 reads them.
//
// Two things differ from KrakenD, both deliberately. A template that does
// not parse or execute, and an include of a partial that cannot be read, is
// an error here; KrakenD logs it and silently parses the raw template file
// (or includes nothing) instead. And every byte of the rendered document
// remembers where it came from, so a violation in the rendered config can
// name the template file and line that produced it ([Rendered.Origin]).
//
// flexible reads files (the config template, settings, sub-templates,
// partials) and writes one when Config.Out is set, as KrakenD's FC_OUT does.
// It must not import anything under edge/ or the control plane's services;
// gwctl and gw-edge's standalone mode use it before they compile.
package flexible

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode/utf8"

	"github.com/Masterminds/sprig/v3"
)

// The environment variables KrakenD CE reads (cmd/krakend-ce).
const (
	EnvEnable    = "FC_ENABLE"
	EnvSettings  = "FC_SETTINGS"
	EnvPartials  = "FC_PARTIALS"
	EnvTemplates = "FC_TEMPLATES"
	EnvOut       = "FC_OUT"
)

// Config says where a render finds its inputs. The zero value renders the
// file with no settings, partials relative to the working directory and no
// sub-templates.
type Config struct {
	// Enable is FC_ENABLE: any non-empty value turns rendering on.
	Enable bool
	// Settings is FC_SETTINGS: a folder whose *.json files (each one JSON
	// object) become the template's variables, named after the file
	// without .json ("service.json" is {{ .service }}).
	Settings string
	// Partials is FC_PARTIALS: the folder {{ include "name" }} reads from,
	// verbatim (a partial is not a template).
	Partials string
	// Templates is FC_TEMPLATES: a folder whose *.tmpl files are parsed
	// with the config, callable as {{ template "name.tmpl" . }}.
	Templates string
	// Out is FC_OUT: when set, the rendered document is written there and
	// parsed in the format of its extension; otherwise it is parsed as
	// JSON, as KrakenD does.
	Out string
}

// FromEnv reads the FC_* variables through getenv (os.Getenv).
func FromEnv(getenv func(string) string) Config {
	return Config{
		Enable:    getenv(EnvEnable) != "",
		Settings:  getenv(EnvSettings),
		Partials:  getenv(EnvPartials),
		Templates: getenv(EnvTemplates),
		Out:       getenv(EnvOut),
	}
}

// File is one input of a render and the sha256 of its content.
type File struct {
	// Name is the path as the render read it (FC_SETTINGS joined with the
	// file name, for instance).
	Name   string
	SHA256 string
}

// Rendered is the result of a render.
type Rendered struct {
	// Filename is the name to compile the content under: Config.Out when
	// set, else the template's base name with its extension replaced by
	// .json (KrakenD parses an unnamed render as JSON).
	Filename string
	// Content is the rendered document.
	Content []byte
	// Files lists every file the render read, sorted by name: the config
	// template, the settings files, the sub-templates and the partials that
	// were included.
	Files []File

	sources []*source // by id
	segs    []segment // sorted by out
	lines   []int     // byte offset of each line of Content
}

// source is one file whose bytes may appear in the output.
type source struct {
	name  string
	lines []int
}

// segment says where the output bytes from out on came from: exact ones
// copy the source byte for byte from off on; the others (an action's
// value) all come from the action at off.
type segment struct {
	out   int
	src   int
	off   int
	exact bool
}

// Error is a render failure: a settings file that cannot be read or is not
// a JSON object, a template that does not parse or execute, a partial that
// cannot be read. Errors lists each one.
type Error struct {
	Errors []error
}

func (e *Error) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, err := range e.Errors {
		msgs[i] = err.Error()
	}
	return "flexible config: " + strings.Join(msgs, "; ")
}

func (e *Error) Unwrap() []error { return e.Errors }

// markerFunc is the function the renderer calls before every action to say
// which action runs; it prints nothing.
const markerFunc = "apigwFlexibleConfigAction"

// Render renders the template file with cfg (Enable is not consulted: the
// caller decides to render). When cfg.Out is set the rendered document is
// also written there. Every problem is reported in one *Error.
func Render(file string, cfg Config) (*Rendered, error) {
	r := &renderer{cfg: cfg, texts: map[*byte]textAt{}, vars: map[string]any{}, files: map[string]string{}}
	if err := r.loadSettings(); err != nil {
		return nil, err
	}
	out, err := r.execute(file)
	if err != nil {
		return nil, err
	}
	res := &Rendered{Filename: cfg.Out, Content: out, sources: r.sources, segs: r.segs, lines: lineStarts(out)}
	if res.Filename == "" {
		base := filepath.Base(file)
		res.Filename = strings.TrimSuffix(base, filepath.Ext(base)) + ".json"
	}
	for name, sum := range r.files {
		res.Files = append(res.Files, File{Name: name, SHA256: sum})
	}
	sort.Slice(res.Files, func(i, j int) bool { return res.Files[i].Name < res.Files[j].Name })
	if cfg.Out != "" {
		if err := os.WriteFile(cfg.Out, out, 0o644); err != nil {
			return nil, &Error{Errors: []error{fmt.Errorf("write FC_OUT: %w", err)}}
		}
	}
	return res, nil
}

// renderer holds one render's state.
type renderer struct {
	cfg   Config
	vars  map[string]any
	files map[string]string // name -> sha256 of every file read

	sources []*source
	byName  map[string]int // template (file base) name -> source id
	texts   map[*byte]textAt
	marks   []textAt // marker id -> action position

	buf     bytes.Buffer
	segs    []segment
	cur     textAt // the action running
	partial *included
}

// textAt is a position in a source.
type textAt struct{ src, off int }

// included is a partial just returned by include: when the next write is
// exactly its content, the output maps onto the partial's lines.
type included struct {
	src     int
	content string
}

func (r *renderer) read(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	r.files[name] = hex.EncodeToString(sum[:])
	return b, nil
}

func (r *renderer) addSource(name string, content []byte) int {
	r.sources = append(r.sources, &source{name: name, lines: lineStarts(content)})
	return len(r.sources) - 1
}

// loadSettings reads every *.json file of the settings folder into vars, as
// KrakenD does: the file must hold a JSON object.
func (r *renderer) loadSettings() error {
	if r.cfg.Settings == "" {
		return nil
	}
	entries, err := os.ReadDir(r.cfg.Settings)
	if err != nil {
		return &Error{Errors: []error{fmt.Errorf("FC_SETTINGS: %w", err)}}
	}
	var errs []error
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		name := filepath.Join(r.cfg.Settings, e.Name())
		b, err := r.read(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("settings: %w", err))
			continue
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			errs = append(errs, fmt.Errorf("settings %s: %w (a settings file holds one JSON object)", name, err))
			continue
		}
		r.vars[strings.TrimSuffix(e.Name(), ".json")] = v
	}
	if len(errs) > 0 {
		return &Error{Errors: errs}
	}
	return nil
}

// execute parses the config template and the sub-templates, marks every
// action and runs the template named after the config file.
func (r *renderer) execute(file string) ([]byte, error) {
	funcs := sprig.GenericFuncMap()
	funcs["marshal"] = marshal
	funcs["include"] = r.include
	funcs[markerFunc] = r.mark

	files := []string{file}
	if r.cfg.Templates != "" {
		entries, err := os.ReadDir(r.cfg.Templates)
		if err != nil {
			return nil, &Error{Errors: []error{fmt.Errorf("FC_TEMPLATES: %w", err)}}
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".tmpl") {
				files = append(files, filepath.Join(r.cfg.Templates, e.Name()))
			}
		}
	}
	// As template.ParseFiles: each file is a template named after its base
	// name; a later file of the same name replaces an earlier one.
	tmpl := template.New("config").Funcs(funcs)
	r.byName = map[string]int{}
	for _, name := range files {
		b, err := r.read(name)
		if err != nil {
			return nil, &Error{Errors: []error{fmt.Errorf("read template: %w", err)}}
		}
		base := filepath.Base(name)
		if _, err := tmpl.New(base).Parse(string(b)); err != nil {
			return nil, &Error{Errors: []error{fmt.Errorf("parse %s: %w", name, err)}}
		}
		r.byName[base] = r.addSource(name, b)
	}
	for _, t := range tmpl.Templates() {
		if t.Tree == nil || t.Tree.Root == nil {
			continue
		}
		src, ok := r.byName[t.Tree.ParseName]
		if !ok {
			continue
		}
		r.instrument(t.Tree.Root, src)
	}
	err := tmpl.ExecuteTemplate((*tracker)(r), filepath.Base(file), r.vars)
	if err != nil {
		return nil, &Error{Errors: []error{fmt.Errorf("execute %s: %w", file, err)}}
	}
	return r.buf.Bytes(), nil
}

// instrument records where each text node starts and puts a marker call
// before every action and template call, so the output can be traced back.
func (r *renderer) instrument(list *parse.ListNode, src int) {
	if list == nil {
		return
	}
	nodes := make([]parse.Node, 0, len(list.Nodes))
	for _, n := range list.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			if len(n.Text) > 0 {
				r.texts[&n.Text[0]] = textAt{src: src, off: int(n.Pos)}
			}
		case *parse.ActionNode, *parse.TemplateNode:
			nodes = append(nodes, r.marker(n.Position(), src))
		case *parse.IfNode:
			r.instrument(n.List, src)
			r.instrument(n.ElseList, src)
		case *parse.RangeNode:
			r.instrument(n.List, src)
			r.instrument(n.ElseList, src)
		case *parse.WithNode:
			r.instrument(n.List, src)
			r.instrument(n.ElseList, src)
		}
		nodes = append(nodes, n)
	}
	list.Nodes = nodes
}

// marker is the node {{ apigwFlexibleConfigAction ID }}.
func (r *renderer) marker(pos parse.Pos, src int) parse.Node {
	id := len(r.marks)
	r.marks = append(r.marks, textAt{src: src, off: int(pos)})
	return &parse.ActionNode{
		NodeType: parse.NodeAction,
		Pos:      pos,
		Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Cmds: []*parse.CommandNode{{
			NodeType: parse.NodeCommand,
			Pos:      pos,
			Args: []parse.Node{
				parse.NewIdentifier(markerFunc).SetPos(pos),
				&parse.NumberNode{NodeType: parse.NodeNumber, Pos: pos, IsInt: true, Int64: int64(id), Text: strconv.Itoa(id)},
			},
		}}},
	}
}

func (r *renderer) mark(id int) string {
	if id >= 0 && id < len(r.marks) {
		r.cur = r.marks[id]
	}
	r.partial = nil
	return ""
}

// include returns the partial's content verbatim, as KrakenD's include
// does, but a partial that cannot be read is an error.
func (r *renderer) include(name string) (string, error) {
	full := path.Join(r.cfg.Partials, name)
	b, err := r.read(full)
	if err != nil {
		return "", fmt.Errorf("include: %w", err)
	}
	r.partial = &included{src: r.addSource(full, b), content: string(b)}
	return string(b), nil
}

// marshal is KrakenD's marshal: the value as JSON (an unencodable value is
// the empty string there; an error here).
func marshal(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("marshal: %w", err)
	}
	return string(b), nil
}

// tracker is the renderer seen as the template's writer: it appends the
// output and records where each piece came from.
type tracker renderer

func (t *tracker) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	seg := segment{out: t.buf.Len(), src: t.cur.src, off: t.cur.off}
	if at, ok := t.texts[&p[0]]; ok {
		seg = segment{out: seg.out, src: at.src, off: at.off, exact: true}
	} else if t.partial != nil && t.partial.content == string(p) {
		seg = segment{out: seg.out, src: t.partial.src, exact: true}
	}
	t.partial = nil
	t.segs = append(t.segs, seg)
	return t.buf.Write(p)
}

// Origin says which template file and line produced the rendered document's
// character at line and col (1-based; col counts characters, as the
// compiler's positions do), as "file line N". ok is false when the position
// is outside the document.
func (r *Rendered) Origin(line, col int) (string, bool) {
	if r == nil || line < 1 || line > len(r.lines) || len(r.segs) == 0 {
		return "", false
	}
	off := r.lines[line-1]
	end := len(r.Content)
	if line < len(r.lines) {
		end = r.lines[line]
	}
	// Skip col-1 characters; without a column, point at the line's first
	// non-blank byte.
	if col > 0 {
		for i := 1; i < col && off < end; i++ {
			_, n := utf8.DecodeRune(r.Content[off:end])
			off += n
		}
	} else {
		for off < end && (r.Content[off] == ' ' || r.Content[off] == '\t') {
			off++
		}
	}
	i := sort.Search(len(r.segs), func(i int) bool { return r.segs[i].out > off }) - 1
	if i < 0 {
		return "", false
	}
	s := r.segs[i]
	srcOff := s.off
	if s.exact {
		srcOff += off - s.out
	}
	src := r.sources[s.src]
	n, _ := slices.BinarySearch(src.lines, srcOff+1)
	return src.name + " line " + strconv.Itoa(n), true
}

// lineStarts returns the byte offset where each line of b starts.
func lineStarts(b []byte) []int {
	starts := []int{0}
	for i, c := range b {
		if c == '\n' && i+1 < len(b) {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// IsError says whether err is a render failure.
func IsError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
