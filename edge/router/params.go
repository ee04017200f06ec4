package router

// Params receives the values captured by a match, in the slot order given
// by Table.ParamNames for the matched route. Values alias the path passed to
// Lookup (or Params' own scratch buffers): they are valid only as long as
// that path is, so Params must not be retained after the request handler
// returns. The zero value is ready to use; reuse one Params per request
// (pool it) to keep matching allocation-free. Params must not be copied
// after first use.
type Params struct {
	n    int
	vals [MaxParams][]byte
	// clean, alt and cleaned hold paths Lookup has to build: a path with
	// its trailing slash toggled, a trailing-slash redirect target (or a
	// lower-cased path), and the cleaned path (RemoveExtraSlash, fixed-path
	// redirects); fixed the target of a fixed-path redirect.
	clean, alt, cleaned, fixed []byte
}

// Len returns the number of captured values.
func (ps *Params) Len() int { return ps.n }

// Value returns the value of slot i, or nil when i is out of range.
func (ps *Params) Value(i int) []byte {
	if i < 0 || i >= ps.n {
		return nil
	}
	return ps.vals[i]
}

// Set replaces the value of slot i (a modifier/lua-endpoint script's
// params(k, v)); out of range is ignored. v must live as long as ps.
func (ps *Params) Set(i int, v []byte) {
	if i >= 0 && i < ps.n {
		ps.vals[i] = v
	}
}

// Reset forgets the captured values; the scratch buffers are kept.
func (ps *Params) Reset() {
	for i := 0; i < ps.n; i++ {
		ps.vals[i] = nil
	}
	ps.n = 0
}

func (ps *Params) push(v []byte) {
	ps.vals[ps.n] = v
	ps.n++
}

func (ps *Params) pop() {
	ps.n--
	ps.vals[ps.n] = nil
}

// truncate drops values back to n (backtracking).
func (ps *Params) truncate(n int) {
	for ps.n > n {
		ps.pop()
	}
}
