package config

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/yuin/gopher-lua/parse"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// `modifier/lua-proxy` (endpoint) and `modifier/lua-backend` (backend), as
// krakend-lua reads them. The files named in `sources` are read when the
// configuration is compiled, through Options.ReadFile (gw-edge run: the
// working directory of the process; the control plane: the files gwctl
// push sent along), and embedded in the snapshot: edges read no files.

// Lua is one modifier/lua-* namespace.
type Lua struct {
	Sources       []string
	Pre           string
	Post          string
	AllowOpenLibs bool
	SkipNext      bool
	Live          bool
	// MD5 maps a source to its expected md5 checksum (hex).
	MD5 map[string]string
	// texts are the sources' contents, filled by validation (index-aligned
	// with Sources).
	texts []string
}

func (d *decoder) lua(n *node, p path) *Lua {
	l := &Lua{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"sources":         d.strings(&l.Sources),
		"pre":             d.str(&l.Pre),
		"post":            d.str(&l.Post),
		"allow_open_libs": d.boolean(&l.AllowOpenLibs),
		"skip_next":       d.boolean(&l.SkipNext),
		"live": d.noEffect(d.boolean(&l.Live), "the sources are read once, when the configuration is compiled, and "+
			"embedded in the snapshot (KrakenD's live: true re-reads them on every request); push again to change them"),
		"md5": d.stringMap(&l.MD5),
	}})
	return l
}

// luaEndpoint is modifier/lua-endpoint: krakend-lua's router stage runs
// only pre and never skips the handler.
func (d *decoder) luaEndpoint(n *node, p path) *Lua {
	l := d.lua(n, p)
	if l.Post != "" {
		d.ws.add(p.field("post"), KindNoEffect, "accepted but has no effect: modifier/lua-endpoint runs only pre, as in KrakenD")
	}
	if l.SkipNext {
		d.ws.add(p.field("skip_next"), KindNoEffect, "accepted but has no effect: modifier/lua-endpoint always calls the endpoint, as in KrakenD")
	}
	return l
}

// ReadFunc reads a file named in the configuration (Options.ReadFile).
type ReadFunc func(name string) ([]byte, error)

// OSReadFile reads files relative to the working directory, as KrakenD
// does (gw-edge run, gwctl validate and gwctl push use it).
func OSReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// SourceFiles returns a ReadFunc serving the files a client sent with
// its configuration (gatewayv1.ConfigSource.lua_sources); any other name is
// fs.ErrNotExist.
func SourceFiles(files []*gatewayv1.LuaSource) ReadFunc {
	m := make(map[string][]byte, len(files))
	for _, f := range files {
		m[f.GetName()] = []byte(f.GetText())
	}
	return func(name string) ([]byte, error) {
		if b, ok := m[name]; ok {
			return b, nil
		}
		return nil, fs.ErrNotExist
	}
}

// ReferencedFiles lists the distinct files the configuration names, sorted:
// the `sources` of its Lua stages and the `query_path` of its GraphQL
// backends. gwctl push reads and sends them (ConfigSource.lua_sources). A
// document that does not decode names none.
func ReferencedFiles(filename string, content []byte, env []string) []string {
	s, _ := decode(filename, content, env, nil)
	if s == nil {
		return nil
	}
	seen := map[string]bool{}
	if l := s.ExtraConfig.LuaEndpoint; l != nil {
		for _, n := range l.Sources {
			seen[n] = true
		}
	}
	for _, e := range s.Endpoints {
		if e == nil {
			continue
		}
		for _, l := range []*Lua{e.ExtraConfig.LuaProxy, e.ExtraConfig.LuaEndpoint} {
			if l != nil {
				for _, n := range l.Sources {
					seen[n] = true
				}
			}
		}
		for _, b := range e.Backend {
			if b == nil {
				continue
			}
			if b.ExtraConfig.LuaBackend != nil {
				for _, n := range b.ExtraConfig.LuaBackend.Sources {
					seen[n] = true
				}
			}
			if g := b.ExtraConfig.GraphQL; g != nil && g.QueryPath != "" {
				seen[g.QueryPath] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// readFile reads a file the configuration names through Options.ReadFile;
// one that cannot be read is a violation at p. what names it in the
// message ("Lua source").
func (v *validator) readFile(p path, name, what string) (string, bool) {
	if v.s.readFile == nil {
		v.vs.add(p, KindNotFound, "%q: no files were given with the configuration (the %s is read where it is compiled)", name, what)
		return "", false
	}
	b, err := v.s.readFile(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			v.vs.add(p, KindNotFound, "%q: no such file (files are read relative to the working directory of gw-edge run or gwctl)", name)
		} else {
			v.vs.add(p, KindInvalid, "%q: %v", name, err)
		}
		return "", false
	}
	return string(b), true
}

// lua reads the sources and checks every part's syntax: a file that cannot
// be read, a checksum that does not match or Lua that does not parse is a
// violation (KrakenD logs an unreadable file and runs without it).
func (v *validator) lua(p path, l *Lua) {
	l.texts = make([]string, len(l.Sources))
	for i, name := range l.Sources {
		sp := p.field("sources").index(i)
		if name == "" {
			v.vs.add(sp, KindInvalid, "empty file name")
			continue
		}
		text, ok := v.readFile(sp, name, "Lua source")
		if !ok {
			continue
		}
		l.texts[i] = text
		if line, msg, bad := luaSyntax(l.texts[i]); bad {
			v.vs.add(sp, KindInvalid, "%s:%d: Lua syntax error: %s", name, line, msg)
		}
	}
	for _, src := range sortedKeys(l.MD5) {
		mp := p.field("md5").key(src)
		i := indexOfString(l.Sources, src)
		if i < 0 {
			v.vs.add(mp, KindNotFound, "%q is not one of the sources", src)
			continue
		}
		sum := md5.Sum([]byte(l.texts[i]))
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, l.MD5[src]) {
			v.vs.add(mp, KindInvalid, "wrong checksum for %s: have %s, want %s", src, got, l.MD5[src])
		}
	}
	for _, part := range []struct {
		field, code string
	}{{"pre", l.Pre}, {"post", l.Post}} {
		if line, msg, bad := luaSyntax(part.code); bad {
			v.vs.add(p.field(part.field), KindInvalid, "line %d: Lua syntax error: %s", line, msg)
		}
	}
}

func indexOfString(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// luaSyntax parses code as gopher-lua does and returns the first error.
func luaSyntax(code string) (line int, msg string, bad bool) {
	if strings.TrimSpace(code) == "" {
		return 0, "", false
	}
	_, err := parse.Parse(strings.NewReader(code), "<string>")
	if err == nil {
		return 0, "", false
	}
	var pe *parse.Error
	if errors.As(err, &pe) {
		msg = pe.Message
		if pe.Token != "" {
			msg += " near '" + pe.Token + "'"
		}
		return pe.Pos.Line, msg, true
	}
	return 0, err.Error(), true
}

func compileLua(l *Lua) *gatewayv1.LuaScript {
	out := &gatewayv1.LuaScript{Pre: l.Pre, Post: l.Post, AllowOpenLibs: l.AllowOpenLibs, SkipNext: l.SkipNext}
	for i, name := range l.Sources {
		text := ""
		if i < len(l.texts) {
			text = l.texts[i]
		}
		out.Sources = append(out.Sources, &gatewayv1.LuaSource{Name: name, Text: text})
	}
	return out
}

// luaPassThrough rejects Lua on a no-op pass-through endpoint (output
// no-op, or one answering backend with encoding no-op): the edge streams
// that response without a stage to run scripts in.
func (v *validator) luaPassThrough(p path, e *Endpoint, answering int) {
	noop := e.OutputEncoding == encodingNoOp
	if answering == 1 {
		for _, b := range e.Backend {
			if b != nil && !b.shadow() && b.Encoding == encodingNoOp {
				noop = true
			}
		}
	}
	if !noop {
		return
	}
	x := p.field("extra_config")
	if e.ExtraConfig.LuaProxy != nil {
		v.vs.add(x.key("modifier/lua-proxy"), KindUnsupported, "Lua is not supported on a no-op pass-through endpoint")
	}
	if e.ExtraConfig.LuaEndpoint != nil {
		v.vs.add(x.key("modifier/lua-endpoint"), KindUnsupported, "Lua is not supported on a no-op pass-through endpoint")
	}
	for i, b := range e.Backend {
		if b != nil && b.ExtraConfig.LuaBackend != nil {
			v.vs.add(p.field("backend").index(i).field("extra_config").key("modifier/lua-backend"), KindUnsupported,
				"Lua is not supported on a no-op pass-through endpoint")
		}
	}
}
