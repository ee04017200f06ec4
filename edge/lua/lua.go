// Package lua runs KrakenD's Lua modifiers (krakend-lua: modifier/lua-proxy,
// modifier/lua-backend) on github.com/yuin/gopher-lua, with the Lua API
// KrakenD registers: the request and response objects, luaTable, luaList,
// luaNil, custom_error and http_response.
//
// A Script is compiled once per plan (sources, pre and post parsed into
// function prototypes) and keeps a pool of Lua states. A state is used by
// one request at a time and never shared between concurrent requests: the
// caller Acquires one, fills its Request (and Response), runs Pre and Post
// and Releases it. KrakenD builds a fresh state per request and runs the
// sources each time; ours runs the sources once per pooled state, so a
// global a script assigns at request time may be seen by a later request
// served by the same state (keep per-request values in locals).
//
// A script runs under the request's deadline (LState.SetContext): a script
// that outlives it is stopped with an error. Every script error, a Lua
// runtime error or custom_error, comes back as an *Error; it never panics
// the caller.
//
// lua imports no other package of the edge and never sees a
// *fasthttp.RequestCtx: the caller copies what a script may read into
// Request and Response (plain Go values, as lura's proxy.Request and
// proxy.Response) and applies the changes back.
package lua

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	glua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// Source is one file of a script's `sources`, with its text.
type Source struct {
	Name string
	Text string
}

// Config describes one modifier/lua-* stage.
type Config struct {
	// Name identifies the stage in logs ("GET /foo backend[0] lua-backend").
	Name    string
	Sources []Source
	Pre     string
	Post    string
	// AllowOpenLibs opens every standard library; without it a script gets
	// only base, package and table (as krakend-lua's binder).
	AllowOpenLibs bool
	// SkipNext makes the stage answer without calling the next one (an
	// empty response for Post).
	SkipNext bool
	// UserAgent is sent by http_response.new.
	UserAgent string
	// Client makes http_response.new calls; nil uses a default client.
	Client *http.Client
	Log    zerolog.Logger
}

// Script is a compiled Lua stage. Safe for concurrent use.
type Script struct {
	name      string
	sources   *glua.FunctionProto // all sources joined, nil without sources
	pre, post *glua.FunctionProto
	preLines  int // lines of the pre and post code, for error texts
	postLines int
	openLibs  bool
	skipNext  bool
	srcMap    []srcLines
	ua        string
	client    *http.Client
	log       zerolog.Logger
	pool      sync.Pool
}

type srcLines struct {
	lines int
	name  string
}

// SyntaxError is a script that does not parse: where (a source file name,
// "pre" or "post"), the line and the parser's message.
type SyntaxError struct {
	Where string
	Line  int
	Msg   string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.Where, e.Line, e.Msg)
}

// Check parses a stage's code the way New does and returns the first
// syntax error of each part (sources one by one, pre, post).
func Check(sources []Source, pre, post string) []*SyntaxError {
	var out []*SyntaxError
	for _, s := range sources {
		if _, err := compile(s.Text, s.Name); err != nil {
			out = append(out, err)
		}
	}
	if _, err := compile(pre, "pre"); err != nil {
		out = append(out, err)
	}
	if _, err := compile(post, "post"); err != nil {
		out = append(out, err)
	}
	return out
}

// compile parses src into a prototype named "<string>", the chunk name
// gopher-lua gives DoString (KrakenD's error texts carry it).
func compile(src, where string) (*glua.FunctionProto, *SyntaxError) {
	chunk, err := parse.Parse(strings.NewReader(src), "<string>")
	if err != nil {
		return nil, syntaxError(err, where)
	}
	p, err := glua.Compile(chunk, "<string>")
	if err != nil {
		return nil, syntaxError(err, where)
	}
	return p, nil
}

func syntaxError(err error, where string) *SyntaxError {
	se := &SyntaxError{Where: where, Msg: err.Error()}
	var pe *parse.Error
	if errors.As(err, &pe) {
		se.Line, se.Msg = pe.Pos.Line, pe.Message
		if pe.Token != "" {
			se.Msg += " near '" + pe.Token + "'"
		}
	}
	return se
}

// New compiles cfg. It returns an error when some part does not parse.
func New(cfg Config) (*Script, error) {
	s := &Script{
		name:     cfg.Name,
		openLibs: cfg.AllowOpenLibs,
		skipNext: cfg.SkipNext,
		ua:       cfg.UserAgent,
		client:   cfg.Client,
		log:      cfg.Log,
	}
	if s.client == nil {
		s.client = &http.Client{}
	}
	if len(cfg.Sources) > 0 {
		// KrakenD runs the sources as one chunk, joined by newlines.
		parts := make([]string, len(cfg.Sources))
		for i, src := range cfg.Sources {
			parts[i] = src.Text
			t := strings.Trim(src.Text, "\n")
			s.srcMap = append(s.srcMap, srcLines{lines: strings.Count(t, "\n") + 1, name: src.Name})
		}
		p, err := compile(strings.Join(parts, "\n"), "sources")
		if err != nil {
			if errs := Check(cfg.Sources, "", ""); len(errs) > 0 {
				return nil, errs[0]
			}
			return nil, err
		}
		s.sources = p
	}
	var serr *SyntaxError
	if s.pre, serr = compile(cfg.Pre, "pre"); serr != nil {
		return nil, serr
	}
	if s.post, serr = compile(cfg.Post, "post"); serr != nil {
		return nil, serr
	}
	s.preLines = strings.Count(strings.Trim(cfg.Pre, "\n"), "\n") + 1
	s.postLines = strings.Count(strings.Trim(cfg.Post, "\n"), "\n") + 1
	if strings.TrimSpace(cfg.Pre) == "" {
		s.pre = nil
	}
	if strings.TrimSpace(cfg.Post) == "" {
		s.post = nil
	}
	s.pool.New = func() any { return s.newState() }
	return s, nil
}

// Name returns the stage name given in Config.
func (s *Script) Name() string { return s.name }

// SkipNext reports whether the next stage must not be called.
func (s *Script) SkipNext() bool { return s.skipNext }

// HasPre and HasPost report whether the stage has that code.
func (s *Script) HasPre() bool  { return s.pre != nil }
func (s *Script) HasPost() bool { return s.post != nil }

// State is one pooled Lua state with the request and response objects its
// scripts see. It is used by one request at a time.
type State struct {
	s       *Script
	L       *glua.LState
	pre     *glua.LFunction
	post    *glua.LFunction
	initErr error // the sources failed when the state was made

	// Req is what request.load() returns; the caller fills it before Pre
	// (and may read the changes after).
	Req Request
	// Resp is what response.load() returns in Post; the caller fills it
	// before Post and applies it afterwards.
	Resp Response

	reqUD, respUD *glua.LUserData
	ctxUD         *glua.LUserData
	ctx           deadlineCtx
	opened        []*httpResponse // http_response answers, closed by Release
}

// Acquire returns a state for one request; give it back with Release.
func (s *Script) Acquire() *State {
	st := s.pool.Get().(*State)
	return st
}

// Release resets st and returns it to the pool.
func (s *Script) Release(st *State) {
	st.Req.reset()
	st.Resp.reset()
	st.L.SetTop(0)
	for i, h := range st.opened {
		h.close()
		st.opened[i] = nil
	}
	st.opened = st.opened[:0]
	s.pool.Put(st)
}

func (s *Script) newState() any {
	L := glua.NewState(glua.Options{SkipOpenLibs: true, IncludeGoStackTrace: true})
	if s.openLibs {
		L.OpenLibs()
	} else {
		for _, lib := range []struct {
			name string
			fn   glua.LGFunction
		}{{glua.LoadLibName, glua.OpenPackage}, {glua.BaseLibName, glua.OpenBase}, {glua.TabLibName, glua.OpenTable}} {
			L.Push(L.NewFunction(lib.fn))
			L.Push(glua.LString(lib.name))
			L.Call(1, 0)
		}
	}
	st := &State{s: s, L: L}
	st.Req.reset()
	st.Resp.reset()
	register(st)
	if s.pre != nil {
		st.pre = L.NewFunctionFromProto(s.pre)
	}
	if s.post != nil {
		st.post = L.NewFunctionFromProto(s.post)
	}
	if s.sources != nil {
		L.Push(L.NewFunctionFromProto(s.sources))
		if err := L.PCall(0, 0, nil); err != nil {
			st.initErr = s.toError(err, "")
		}
		L.SetTop(0)
	}
	return st
}

// Pre runs the pre code on st.Req under deadline (zero: none).
func (st *State) Pre(deadline time.Time) error {
	if st.initErr != nil {
		return st.fail("sources", st.initErr)
	}
	if st.pre == nil {
		return nil
	}
	return st.run("pre", st.pre, deadline)
}

// Post runs the post code on st.Resp (and st.Req) under deadline.
func (st *State) Post(deadline time.Time) error {
	if st.initErr != nil {
		return st.fail("sources", st.initErr)
	}
	if st.post == nil {
		return nil
	}
	return st.run("post", st.post, deadline)
}

func (st *State) run(stage string, fn *glua.LFunction, deadline time.Time) (err error) {
	L := st.L
	if !deadline.IsZero() {
		st.ctx.reset(deadline)
		L.SetContext(&st.ctx)
		defer func() {
			L.RemoveContext()
			st.ctx.stop()
		}()
	}
	defer func() {
		// A panic in a Go function of the API is a bug; it fails the
		// request, not the process.
		if r := recover(); r != nil {
			err = st.fail(stage, &Error{Msg: fmt.Sprint(r)})
		}
	}()
	L.Push(fn)
	if e := L.PCall(0, 0, nil); e != nil {
		L.SetTop(0)
		return st.fail(stage, st.s.toError(e, stage))
	}
	return nil
}

func (st *State) fail(stage string, err error) error {
	var le *Error
	if errors.As(err, &le) && le.Status > 0 {
		// custom_error with a status is the script's answer, not a fault.
		return err
	}
	st.s.log.Error().Str("script", st.s.name).Str("stage", stage).Err(err).Msg("lua: script error")
	return err
}

// Error is a script's failure: a Lua runtime error (Status 0, KrakenD
// answers 500) or custom_error(msg[, status[, content_type]]).
type Error struct {
	Msg         string
	Status      int    // 0: none given (500)
	ContentType string // custom_error's third argument
}

func (e *Error) Error() string { return e.Msg }

// separator is what krakend-lua's custom_error puts between its fields.
const separator = " || "

// toError turns a gopher-lua error into KrakenD's: the message without the
// chunk and line prefix, then either custom_error's fields or, for a
// runtime error, the source file and line it maps to ("msg (file.lua:L3)").
func (s *Script) toError(err error, stage string) error {
	var ae *glua.ApiError
	if !errors.As(err, &ae) {
		return &Error{Msg: err.Error()}
	}
	if ae.Cause != nil && errors.Is(ae.Cause, context.DeadlineExceeded) {
		return &Error{Msg: errStopped}
	}
	obj := ae.Object.String()
	line := -1
	text := obj
	if p := strings.Split(obj, ":"); len(p) > 1 {
		if v, err := strconv.Atoi(p[1]); err == nil {
			line = v
		}
		if len(p) > 2 {
			text = strings.Trim(strings.Join(p[2:], ":"), " ")
		}
	}
	if text == context.DeadlineExceeded.Error() || text == context.Canceled.Error() {
		return &Error{Msg: errStopped}
	}
	parts := strings.Split(text, separator)
	if len(parts) == 1 {
		if name, rel, ok := s.affected(line, stage); ok {
			return &Error{Msg: fmt.Sprintf("%s (%s:L%d)", parts[0], name, rel)}
		}
		return &Error{Msg: parts[0]}
	}
	code, err2 := strconv.Atoi(parts[1])
	if err2 != nil {
		code = 500
	}
	if code == -1 {
		return &Error{Msg: parts[0]}
	}
	e := &Error{Msg: parts[0], Status: code}
	if len(parts) > 2 {
		e.ContentType = parts[2]
	}
	return e
}

// affected maps a line of the joined sources to its file, as krakend-lua's
// SourceMap (the pre and post code count as one more entry each, which is
// how KrakenD words errors in them).
func (s *Script) affected(line int, stage string) (string, int, bool) {
	if line < 0 {
		return "", 0, false
	}
	entries := s.srcMap
	switch stage {
	case "pre":
		entries = append(entries[:len(entries):len(entries)], srcLines{lines: s.preLines, name: "pre-script"})
	case "post":
		entries = append(entries[:len(entries):len(entries)], srcLines{lines: s.postLines, name: "post-script"})
	}
	count := 0
	for _, src := range entries {
		count += src.lines
		if count >= line {
			return filepath.Base(src.name), src.lines - (count - line), true
		}
	}
	return "", 0, false
}

// deadlineCtx is a reusable context.Context with a deadline, so a pooled
// state can run under the request's deadline without allocating a context
// per call. Its Done channel is made when gopher-lua first asks for it.
type deadlineCtx struct {
	mu       sync.Mutex
	deadline time.Time
	done     chan struct{}
	timer    *time.Timer
	err      error
}

func (c *deadlineCtx) reset(d time.Time) {
	c.mu.Lock()
	c.deadline = d
	c.done = make(chan struct{})
	c.err = nil
	if c.timer == nil {
		c.timer = time.AfterFunc(time.Until(d), c.expire)
	} else {
		c.timer.Reset(time.Until(d))
	}
	c.mu.Unlock()
}

func (c *deadlineCtx) expire() {
	c.mu.Lock()
	if c.err == nil && c.done != nil {
		c.err = context.DeadlineExceeded
		close(c.done)
	}
	c.mu.Unlock()
}

func (c *deadlineCtx) stop() {
	c.timer.Stop()
	c.mu.Lock()
	if c.err == nil {
		c.err = context.Canceled
		close(c.done)
	}
	c.deadline = time.Time{}
	c.mu.Unlock()
}

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, !c.deadline.IsZero() }

// Done is called by gopher-lua before each instruction: no lock. done is
// only written by reset, on the goroutine that runs the script.
func (c *deadlineCtx) Done() <-chan struct{} { return c.done }
func (c *deadlineCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
func (c *deadlineCtx) Value(any) any { return nil }

// errStopped is the error text of a script stopped at the request's
// deadline: KrakenD's text for a request that outlived the endpoint
// timeout (its scripts are never stopped, the endpoint answers anyway).
const errStopped = "context deadline exceeded"
