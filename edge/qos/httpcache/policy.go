package httpcache

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/apigw/gateway/edge/internal/ascii"
)

// maxDeltaSeconds is RFC 9111 §1.2.2's cap on delta-seconds (2^31).
const maxDeltaSeconds = 1 << 31

// directives is a parsed Cache-Control (response or request).
type directives struct {
	noStore, noCache, private, public, mustRevalidate bool
	maxAge, sMaxAge                                   int64 // seconds; -1 = absent
	invalid                                           bool  // malformed or conflicting freshness: treat as stale
}

// parseCacheControl folds every Cache-Control value into d. Directive names
// are case-insensitive; values may be quoted.
func (d *directives) parse(v []byte) {
	for len(v) > 0 {
		var item []byte
		if i := indexCommaOutsideQuotes(v); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			item, v = v, nil
		}
		item = bytes.TrimSpace(item)
		if len(item) == 0 {
			continue
		}
		name, val, hasVal := bytes.Cut(item, []byte("="))
		name = bytes.TrimSpace(name)
		val = bytes.Trim(bytes.TrimSpace(val), `"`)
		switch {
		case ascii.EqualFold(name, "no-store"):
			d.noStore = true
		case ascii.EqualFold(name, "no-cache"):
			d.noCache = true
		case ascii.EqualFold(name, "private"):
			d.private = true
		case ascii.EqualFold(name, "public"):
			d.public = true
		case ascii.EqualFold(name, "must-revalidate"), ascii.EqualFold(name, "proxy-revalidate"):
			d.mustRevalidate = true
		case ascii.EqualFold(name, "max-age"):
			d.setDelta(&d.maxAge, val, hasVal)
		case ascii.EqualFold(name, "s-maxage"):
			d.setDelta(&d.sMaxAge, val, hasVal)
		}
	}
}

func (d *directives) setDelta(dst *int64, val []byte, hasVal bool) {
	n, ok := parseDelta(val)
	switch {
	case !hasVal || !ok:
		d.invalid = true
	case *dst >= 0 && *dst != n:
		d.invalid = true // conflicting duplicates (RFC 9111 §4.2.1)
	default:
		*dst = n
	}
}

// parseDelta parses delta-seconds, saturating at 2^31.
func parseDelta(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < maxDeltaSeconds {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, maxDeltaSeconds), true
}

func indexCommaOutsideQuotes(b []byte) int {
	quoted := false
	for i, c := range b {
		switch c {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				return i
			}
		}
	}
	return -1
}

// cacheableStatus lists the statuses cacheable by default (RFC 9110 §15.1),
// minus 206 (no range support).
func cacheableStatus(s int) bool {
	switch s {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// freshness is what Put decides about a response.
type freshness struct {
	lifetime   time.Duration // how long it is fresh, from its origin
	initialAge time.Duration // its age when received
	varyNames  [][]byte      // header names the response varies on
}

// evaluate applies the storage rules of the package doc. ok false means the
// response must not be stored.
func evaluate(status int, hdr []Header, req RequestHeader, now time.Time) (f freshness, ok bool) {
	if !cacheableStatus(status) {
		return f, false
	}
	if req != nil {
		var rd directives
		rd.maxAge, rd.sMaxAge = -1, -1
		rd.parse(req.Peek("Cache-Control"))
		if rd.noStore {
			return f, false
		}
	}
	d := directives{maxAge: -1, sMaxAge: -1}
	var (
		expires, date, age []byte
		hasExpires, pragma bool
		hasCacheControl    bool
	)
	for _, h := range hdr {
		switch {
		case ascii.EqualFold(h.Key, "cache-control"):
			hasCacheControl = true
			d.parse(h.Value)
		case ascii.EqualFold(h.Key, "pragma"):
			pragma = pragma || bytes.Contains(bytes.ToLower(h.Value), []byte("no-cache"))
		case ascii.EqualFold(h.Key, "expires"):
			expires, hasExpires = h.Value, true
		case ascii.EqualFold(h.Key, "date"):
			date = h.Value
		case ascii.EqualFold(h.Key, "age"):
			age = h.Value
		case ascii.EqualFold(h.Key, "set-cookie"):
			return f, false
		case ascii.EqualFold(h.Key, "vary"):
			for name := range bytes.SplitSeq(h.Value, []byte(",")) {
				name = bytes.TrimSpace(name)
				if bytes.Equal(name, []byte("*")) {
					return f, false
				}
				if len(name) > 0 {
					f.varyNames = append(f.varyNames, bytes.ToLower(name))
				}
			}
		}
	}
	if d.noStore || d.private || d.noCache || d.invalid || (pragma && !hasCacheControl) {
		return f, false
	}
	if req != nil && len(req.Peek("Authorization")) > 0 && !d.public && !d.mustRevalidate && d.sMaxAge < 0 {
		return f, false
	}
	dateT := now
	if t, err := http.ParseTime(string(date)); err == nil && len(date) > 0 {
		dateT = t
	}
	switch {
	case d.sMaxAge >= 0:
		f.lifetime = time.Duration(d.sMaxAge) * time.Second
	case d.maxAge >= 0:
		f.lifetime = time.Duration(d.maxAge) * time.Second
	case hasExpires:
		t, err := http.ParseTime(string(expires))
		if err != nil {
			return f, false // invalid Expires means already expired
		}
		f.lifetime = t.Sub(dateT)
	default:
		return f, false // no explicit freshness; no heuristics
	}
	f.lifetime = min(f.lifetime, maxDeltaSeconds*time.Second)
	// RFC 9111 §4.2.3: initial age = max(apparent age, Age header).
	apparent := max(now.Sub(dateT), 0)
	if n, err := strconv.ParseInt(string(bytes.TrimSpace(age)), 10, 64); err == nil && n > 0 {
		apparent = max(apparent, time.Duration(min(n, maxDeltaSeconds))*time.Second)
	}
	f.initialAge = apparent
	return f, f.lifetime > f.initialAge
}
