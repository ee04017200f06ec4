package config

import (
	"encoding/base64"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// The backend-level `modifier/martian` namespace: google/martian's JSON DSL,
// where every modifier is an object with one key, its type. We implement
// every modifier KrakenD CE registers; the verifiers are accepted and warned
// (no effect). static.Modifier's rootPath is a directory of the edge's disk:
// the control plane never reads it.

const (
	martianHeader      = "header.Modifier"
	martianBlacklist   = "header.Blacklist"
	martianQueryString = "querystring.Modifier"
	martianBody        = "body.Modifier"
	martianFifo        = "fifo.Group"
	martianAppend      = "header.Append"
	martianCopy        = "header.Copy"
	martianID          = "header.Id"
	martianHdrFilter   = "header.Filter"
	martianRegexFilter = "header.RegexFilter"
	martianQSFilter    = "querystring.Filter"
	martianURL         = "url.Modifier"
	martianStash       = "stash.Modifier"
	martianPriority    = "priority.Group"
	martianCookie      = "cookie.Modifier"
	martianCookieFilt  = "cookie.Filter"
	martianStatus      = "status.Modifier"
	martianPort        = "port.Modifier"
	martianPortFilter  = "port.Filter"
	martianURLFilter   = "url.Filter"
	martianURLRegex    = "url.RegexFilter"
	martianHdrVerify   = "header.Verifier"
	martianQSVerify    = "querystring.Verifier"
	martianStatVerify  = "status.Verifier"
	martianURLVerify   = "url.Verifier"
	martianStatic      = "static.Modifier"

	scopeRequest  = "request"
	scopeResponse = "response"
)

var (
	martianTypes = []string{martianBody, martianCookieFilt, martianCookie, martianFifo, martianAppend, martianBlacklist,
		martianCopy, martianHdrFilter, martianID, martianHeader, martianRegexFilter, martianHdrVerify, martianPortFilter,
		martianPort, martianPriority, martianQSFilter, martianQueryString, martianQSVerify, martianStash, martianStatic, martianStatus,
		martianStatVerify, martianURLFilter, martianURL, martianURLRegex, martianURLVerify}
	// martianVerifiers are accepted and warned: KrakenD registers them but
	// never reads what they record.
	martianVerifiers = []string{martianHdrVerify, martianQSVerify, martianStatVerify, martianURLVerify}
	// martianRequestOnly implement martian's RequestModifier only: their
	// default scope is the request, and a response scope is an error.
	martianRequestOnly = []string{martianQueryString, martianID, martianURL, martianPort}
	// martianResponseOnly are martian's ResponseModifier only.
	martianResponseOnly = []string{martianStatus}
	martianScopes       = []string{scopeRequest, scopeResponse}
)

// martian decodes one modifier object; it returns nil when n is not a
// single-key object naming a supported modifier.
func (d *decoder) martian(n *node, p path) *Martian {
	members := d.members(n, p, path.key)
	if n.kind != typeObject {
		return nil
	}
	if len(members) != 1 {
		d.vs.add(p, KindInvalid, "a martian modifier is an object with exactly one key, its type (%s); got %d keys",
			strings.Join(martianTypes, ", "), len(members))
		return nil
	}
	m := members[0]
	mp := p.key(m.key)
	if !oneOf(m.key, martianTypes) {
		d.vs.add(mp, KindUnsupported, "martian modifier %q is not a martian modifier KrakenD CE registers; supported: %s", m.key, strings.Join(martianTypes, ", "))
		return nil
	}
	if !d.want(m.val, mp, typeObject) {
		return nil
	}
	x := &Martian{Type: m.key}
	fields := map[string]handler{"scope": d.strings(&x.Scope)}
	nested := func(dst **Martian) handler {
		return func(n *node, p path) { *dst = d.martian(n, p) }
	}
	switch x.Type {
	case martianHeader, martianQueryString, martianAppend:
		fields["name"] = d.str(&x.Name)
		fields["value"] = d.str(&x.Value)
	case martianCopy:
		fields["from"] = d.str(&x.From)
		fields["to"] = d.str(&x.To)
	case martianID:
		fields["header"] = d.str(&x.Header)
	case martianHdrFilter, martianQSFilter:
		fields["name"] = d.str(&x.Name)
		fields["value"] = d.str(&x.Value)
		fields["modifier"] = nested(&x.Then)
		fields["else"] = nested(&x.Else)
	case martianRegexFilter:
		fields["header"] = d.str(&x.Header)
		fields["regex"] = d.str(&x.Regex)
		fields["modifier"] = nested(&x.Then)
	case martianURL:
		fields["scheme"] = d.str(&x.Scheme)
		fields["host"] = d.str(&x.Host)
		fields["path"] = d.str(&x.Path)
		fields["query"] = d.str(&x.Query)
	case martianStash:
		fields["headerName"] = d.str(&x.Header)
	case martianPriority:
		fields["modifiers"] = func(n *node, p path) {
			d.list(n, p, func(_ int, item *node, ip path) {
				var prio int64
				var child *Martian
				d.object(item, ip, objectSpec{fields: map[string]handler{
					"priority": d.integer(&prio),
					"modifier": nested(&child),
				}})
				x.Priorities = append(x.Priorities, prio)
				x.Modifiers = append(x.Modifiers, child)
			})
		}
	case martianBlacklist:
		fields["names"] = d.strings(&x.Names)
	case martianCookie:
		fields["name"] = d.str(&x.Name)
		fields["value"] = d.str(&x.Value)
		fields["path"] = d.str(&x.Path)
		fields["domain"] = d.str(&x.Domain)
		fields["expires"] = d.str(&x.Expires)
		fields["secure"] = d.boolean(&x.Secure)
		fields["httpOnly"] = d.boolean(&x.HTTPOnly)
		fields["maxAge"] = d.integer(&x.MaxAge)
	case martianCookieFilt:
		fields["name"] = d.str(&x.Name)
		fields["value"] = d.str(&x.Value)
		fields["modifier"] = nested(&x.Then)
		fields["else"] = nested(&x.Else)
	case martianStatus, martianStatVerify:
		fields["statusCode"] = d.integer(&x.StatusCode)
	case martianPort:
		fields["port"] = d.integer(&x.Port)
		fields["defaultForScheme"] = d.boolean(&x.DefaultForScheme)
		fields["remove"] = d.boolean(&x.Remove)
	case martianPortFilter:
		fields["port"] = d.integer(&x.Port)
		fields["modifier"] = nested(&x.Then)
	case martianURLFilter:
		fields["scheme"] = d.str(&x.Scheme)
		fields["host"] = d.str(&x.Host)
		fields["path"] = d.str(&x.Path)
		fields["query"] = d.str(&x.Query)
		fields["modifier"] = nested(&x.Then)
		fields["else"] = nested(&x.Else)
	case martianURLRegex:
		fields["regex"] = d.str(&x.Regex)
		fields["modifier"] = nested(&x.Then)
		fields["else"] = nested(&x.Else)
	case martianHdrVerify, martianQSVerify:
		fields["name"] = d.str(&x.Name)
		fields["value"] = d.str(&x.Value)
	case martianURLVerify:
		fields["scheme"] = d.str(&x.Scheme)
		fields["host"] = d.str(&x.Host)
		fields["path"] = d.str(&x.Path)
		fields["query"] = d.str(&x.Query)
	case martianStatic:
		fields["rootPath"] = d.str(&x.RootPath)
		fields["explicitPaths"] = d.stringMap(&x.ExplicitPaths)
	case martianBody:
		fields["contentType"] = d.str(&x.ContentType)
		fields["body"] = func(n *node, p path) {
			if !d.want(n, p, typeString) {
				return
			}
			b, err := base64.StdEncoding.DecodeString(n.text)
			if err != nil {
				d.vs.add(p, KindInvalid, "body must be base64 (standard alphabet, padded): %v", err)
				return
			}
			x.Body = b
		}
	case martianFifo:
		fields["aggregateErrors"] = d.boolean(&x.AggregateErrors)
		fields["modifiers"] = func(n *node, p path) {
			d.list(n, p, func(_ int, item *node, ip path) {
				x.Modifiers = append(x.Modifiers, d.martian(item, ip))
			})
		}
	}
	d.object(m.val, mp, objectSpec{fields: fields})
	if oneOf(x.Type, martianVerifiers) {
		// Every key of a verifier is inert: warn on each (the inert-keys
		// test wants a warning at or under each key), or on the verifier.
		const why = "martian verifiers record failures that KrakenD CE never reads (it serves no verify endpoint), so they change nothing"
		if len(m.val.members) == 0 {
			d.ws.add(mp, KindNoEffect, "accepted but has no effect: %s", why)
		} else {
			d.warnTree(m.val, mp, why)
		}
	}
	return x
}

// martian checks one modifier; p is the path of its object, so its fields
// are at p["<type>"].field.
func (v *validator) martian(p path, m *Martian) {
	tp := p.key(m.Type)
	sp := tp.field("scope")
	if len(m.Scope) == 0 {
		v.vs.add(sp, KindInvalid, "an empty scope applies the modifier to nothing; allowed: %s", strings.Join(martianScopes, ", "))
	}
	for i, s := range m.Scope {
		switch {
		case !oneOf(s, martianScopes):
			v.vs.unsupportedValue(sp.index(i), s, martianScopes)
		case s == scopeResponse && oneOf(m.Type, martianRequestOnly):
			v.vs.add(sp.index(i), KindInvalid, "%s only modifies requests", m.Type)
		case s == scopeRequest && oneOf(m.Type, martianResponseOnly):
			v.vs.add(sp.index(i), KindInvalid, "%s only modifies responses", m.Type)
		}
	}
	if m.Type == martianStash && len(m.Scope) > 0 && !oneOf(scopeRequest, m.Scope) {
		v.vs.add(sp, KindInvalid, "to write the header on a response, give stash.Modifier both scopes (martian refuses response alone)")
	}
	nested := func(field string, c *Martian, required bool) {
		switch {
		case c != nil:
			v.martian(tp.field(field), c)
		case required:
			v.vs.add(tp.field(field), KindRequired, "%s needs a modifier to run", m.Type)
		}
	}
	switch m.Type {
	case martianHeader:
		switch {
		case m.Name == "":
			v.vs.add(tp.field("name"), KindRequired, "name (the header to set) is required")
		case !isToken(m.Name):
			v.vs.add(tp.field("name"), KindInvalid, "%q is not a valid header name", m.Name)
		}
		v.headerValue(tp.field("value"), m.Value)
	case martianQueryString:
		if m.Name == "" {
			v.vs.add(tp.field("name"), KindRequired, "name (the query parameter to set) is required")
		}
	case martianBlacklist:
		if len(m.Names) == 0 {
			v.vs.add(tp.field("names"), KindRequired, "names (the headers to remove) is required")
		}
		v.headerNames(tp.field("names"), m.Names, false)
	case martianBody:
		v.headerValue(tp.field("contentType"), m.ContentType)
	case martianStatic:
		v.martianStatic(tp, m)
	case martianFifo:
		mp := tp.field("modifiers")
		if len(m.Modifiers) == 0 {
			v.vs.add(mp, KindRequired, "a fifo.Group needs at least one modifier")
		}
		for i, c := range m.Modifiers {
			if c != nil {
				v.martian(mp.index(i), c)
			}
		}
	case martianPriority:
		mp := tp.field("modifiers")
		if len(m.Modifiers) == 0 {
			v.vs.add(mp, KindRequired, "a priority.Group needs at least one modifier")
		}
		for i, c := range m.Modifiers {
			if c == nil {
				v.vs.add(mp.index(i).field("modifier"), KindRequired, "each entry of a priority.Group needs a modifier")
				continue
			}
			v.martian(mp.index(i).field("modifier"), c)
		}
	case martianAppend:
		v.headerName(tp.field("name"), m.Name)
		v.headerValue(tp.field("value"), m.Value)
	case martianCopy:
		v.headerName(tp.field("from"), m.From)
		v.headerName(tp.field("to"), m.To)
	case martianID:
		if m.Header != "" {
			v.headerName(tp.field("header"), m.Header)
		}
	case martianStash:
		v.headerName(tp.field("headerName"), m.Header)
	case martianHdrFilter:
		v.headerName(tp.field("name"), m.Name)
		nested("modifier", m.Then, true)
		nested("else", m.Else, false)
	case martianQSFilter:
		if m.Name == "" {
			v.vs.add(tp.field("name"), KindRequired, "name (the query parameter to test) is required")
		}
		nested("modifier", m.Then, true)
		nested("else", m.Else, false)
	case martianRegexFilter:
		if _, err := regexp.Compile(m.Regex); err != nil {
			v.vs.add(tp.field("regex"), KindInvalid, "%q is not a Go regular expression: %v", m.Regex, err)
		}
		nested("modifier", m.Then, true)
	case martianCookie:
		v.cookieName(tp.field("name"), m.Name)
		if m.Expires != "" {
			if _, err := time.Parse(time.RFC3339, m.Expires); err != nil {
				v.vs.add(tp.field("expires"), KindInvalid, "%q is not an RFC 3339 time (martian reads it as Go's time.Time JSON): %v", m.Expires, err)
			}
		}
	case martianCookieFilt:
		v.cookieName(tp.field("name"), m.Name)
		nested("modifier", m.Then, true)
		nested("else", m.Else, false)
	case martianStatus:
		if m.StatusCode < 100 || m.StatusCode > 999 {
			v.vs.add(tp.field("statusCode"), KindInvalid, "%d is not an HTTP status code (100 to 999)", m.StatusCode)
		}
	case martianPort:
		set := 0
		for _, b := range []bool{m.Port != 0, m.DefaultForScheme, m.Remove} {
			if b {
				set++
			}
		}
		switch {
		case set != 1:
			v.vs.add(tp, KindInvalid, "give exactly one of port, defaultForScheme or remove (as martian requires)")
		case m.Port < 0 || m.Port > 65535:
			v.vs.add(tp.field("port"), KindInvalid, "%d is not a TCP port (1 to 65535)", m.Port)
		}
	case martianPortFilter:
		if m.Port < 1 || m.Port > 65535 {
			v.vs.add(tp.field("port"), KindInvalid, "%d is not a TCP port (1 to 65535)", m.Port)
		}
		nested("modifier", m.Then, true)
	case martianURLFilter:
		nested("modifier", m.Then, true)
		nested("else", m.Else, false)
	case martianURLRegex:
		if _, err := regexp.Compile(m.Regex); err != nil {
			v.vs.add(tp.field("regex"), KindInvalid, "%q is not a Go regular expression: %v", m.Regex, err)
		}
		nested("modifier", m.Then, true)
		nested("else", m.Else, false)
	case martianURL:
		if m.Scheme != "" && m.Scheme != "http" && m.Scheme != "https" {
			v.vs.add(tp.field("scheme"), KindInvalid, "%q: the edge calls http and https backends only", m.Scheme)
		}
		if m.Scheme == "" && m.Host == "" && m.Path == "" && m.Query == "" {
			v.s.warnings.add(tp, KindNoEffect, "accepted but has no effect: no scheme, host, path or query to set")
		}
	}
}

// martianStatic checks a static.Modifier. Its directory is on the edge's
// disk, so only its shape is checked here: the edge opens files under it at
// request time and answers 404 for what is missing.
func (v *validator) martianStatic(tp path, m *Martian) {
	if m.RootPath == "" {
		v.vs.add(tp.field("rootPath"), KindRequired,
			"rootPath (a directory of the edge's disk) is required: without one martian serves the gateway's working directory, its config included")
	}
	ep := tp.field("explicitPaths")
	keys := make([]string, 0, len(m.ExplicitPaths))
	for k := range m.ExplicitPaths {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		file := m.ExplicitPaths[k]
		rel := filepath.Clean(strings.TrimLeft(filepath.FromSlash(file), string(filepath.Separator)))
		if rel == "." || !filepath.IsLocal(rel) {
			v.vs.add(ep.key(k), KindInvalid, "%q is not a file under rootPath (the edge serves nothing outside it)", file)
		}
		if !strings.HasPrefix(k, "/") || filepath.Clean(k) != k {
			v.s.warnings.add(ep.key(k), KindNoEffect,
				"accepted but has no effect: %q never matches, martian looks the cleaned request path up (it starts with / and has no trailing slash or dot segment)", k)
		}
	}
}

// cookieName requires a name net/http's Cookie accepts (a token): Go
// drops a cookie with any other name.
func (v *validator) cookieName(p path, name string) {
	switch {
	case name == "":
		v.vs.add(p, KindRequired, "a cookie name is required")
	case !isToken(name):
		v.vs.add(p, KindInvalid, "%q is not a valid cookie name", name)
	}
}

// headerName requires a valid header name.
func (v *validator) headerName(p path, name string) {
	switch {
	case name == "":
		v.vs.add(p, KindRequired, "a header name is required")
	case !isToken(name):
		v.vs.add(p, KindInvalid, "%q is not a valid header name", name)
	}
}

func compileMartian(m *Martian) *gatewayv1.MartianModifier {
	out := &gatewayv1.MartianModifier{Scope: martianScope(m.Scope)}
	switch m.Type {
	case martianHeader:
		out.Kind = &gatewayv1.MartianModifier_HeaderModifier{HeaderModifier: &gatewayv1.MartianHeader{Name: m.Name, Value: m.Value}}
	case martianBlacklist:
		out.Kind = &gatewayv1.MartianModifier_HeaderBlacklist{HeaderBlacklist: &gatewayv1.MartianHeaderList{Names: allowList(m.Names)}}
	case martianQueryString:
		out.Kind = &gatewayv1.MartianModifier_QuerystringModifier{QuerystringModifier: &gatewayv1.MartianQueryString{Name: m.Name, Value: m.Value}}
	case martianBody:
		out.Kind = &gatewayv1.MartianModifier_BodyModifier{BodyModifier: &gatewayv1.MartianBody{ContentType: m.ContentType, Body: m.Body}}
	case martianFifo:
		g := &gatewayv1.MartianGroup{AggregateErrors: m.AggregateErrors}
		for _, c := range m.Modifiers {
			g.Modifiers = append(g.Modifiers, compileMartian(c))
		}
		out.Kind = &gatewayv1.MartianModifier_FifoGroup{FifoGroup: g}
	case martianPriority:
		g := &gatewayv1.MartianPriorityGroup{}
		for i, c := range m.Modifiers {
			g.Modifiers = append(g.Modifiers, &gatewayv1.MartianPrioritized{Priority: m.Priorities[i], Modifier: compileMartian(c)})
		}
		out.Kind = &gatewayv1.MartianModifier_PriorityGroup{PriorityGroup: g}
	case martianAppend:
		out.Kind = &gatewayv1.MartianModifier_HeaderAppend{HeaderAppend: &gatewayv1.MartianHeader{Name: m.Name, Value: m.Value}}
	case martianCopy:
		out.Kind = &gatewayv1.MartianModifier_HeaderCopy{HeaderCopy: &gatewayv1.MartianCopy{From: m.From, To: m.To}}
	case martianID:
		out.Kind = &gatewayv1.MartianModifier_HeaderId{HeaderId: &gatewayv1.MartianID{Header: m.Header}}
	case martianStash:
		out.Kind = &gatewayv1.MartianModifier_StashModifier{StashModifier: &gatewayv1.MartianStash{HeaderName: m.Header}}
	case martianHdrFilter:
		out.Kind = &gatewayv1.MartianModifier_HeaderFilter{HeaderFilter: compileMartianFilter(m)}
	case martianQSFilter:
		out.Kind = &gatewayv1.MartianModifier_QuerystringFilter{QuerystringFilter: compileMartianFilter(m)}
	case martianRegexFilter:
		out.Kind = &gatewayv1.MartianModifier_HeaderRegexFilter{HeaderRegexFilter: &gatewayv1.MartianRegexFilter{
			Header: m.Header, Regex: m.Regex, Modifier: compileMartian(m.Then)}}
	case martianURL:
		out.Kind = &gatewayv1.MartianModifier_UrlModifier{UrlModifier: &gatewayv1.MartianURL{Scheme: m.Scheme, Host: m.Host, Path: m.Path, Query: m.Query}}
	case martianCookie:
		out.Kind = &gatewayv1.MartianModifier_CookieModifier{CookieModifier: &gatewayv1.MartianCookie{
			Name: m.Name, Value: m.Value, Path: m.Path, Domain: m.Domain, Expires: m.Expires,
			Secure: m.Secure, HttpOnly: m.HTTPOnly, MaxAge: m.MaxAge}}
	case martianCookieFilt:
		out.Kind = &gatewayv1.MartianModifier_CookieFilter{CookieFilter: compileMartianFilter(m)}
	case martianStatus:
		out.Kind = &gatewayv1.MartianModifier_StatusModifier{StatusModifier: &gatewayv1.MartianStatus{StatusCode: int32(m.StatusCode)}}
	case martianPort:
		out.Kind = &gatewayv1.MartianModifier_PortModifier{PortModifier: &gatewayv1.MartianPort{
			Port: int32(m.Port), DefaultForScheme: m.DefaultForScheme, Remove: m.Remove}}
	case martianPortFilter:
		out.Kind = &gatewayv1.MartianModifier_PortFilter{PortFilter: &gatewayv1.MartianPortFilter{Port: int32(m.Port), Modifier: compileMartian(m.Then)}}
	case martianURLFilter:
		f := &gatewayv1.MartianURLFilter{Scheme: m.Scheme, Host: m.Host, Path: m.Path, Query: m.Query, Modifier: compileMartian(m.Then)}
		if m.Else != nil {
			f.Else = compileMartian(m.Else)
		}
		out.Kind = &gatewayv1.MartianModifier_UrlFilter{UrlFilter: f}
	case martianURLRegex:
		f := &gatewayv1.MartianURLRegexFilter{Regex: m.Regex, Modifier: compileMartian(m.Then)}
		if m.Else != nil {
			f.Else = compileMartian(m.Else)
		}
		out.Kind = &gatewayv1.MartianModifier_UrlRegexFilter{UrlRegexFilter: f}
	case martianStatic:
		out.Kind = &gatewayv1.MartianModifier_StaticModifier{StaticModifier: &gatewayv1.MartianStatic{
			RootPath: m.RootPath, ExplicitPaths: m.ExplicitPaths}}
	case martianHdrVerify, martianQSVerify, martianStatVerify, martianURLVerify:
		out.Kind = &gatewayv1.MartianModifier_Verifier{Verifier: &gatewayv1.MartianVerifier{Type: m.Type}}
	}
	return out
}

func compileMartianFilter(m *Martian) *gatewayv1.MartianFilter {
	f := &gatewayv1.MartianFilter{Name: m.Name, Value: m.Value, Modifier: compileMartian(m.Then)}
	if m.Else != nil {
		f.Else = compileMartian(m.Else)
	}
	return f
}

// martianScope lists a valid scope in canonical order without repeats, so
// that ["response", "request"] and ["request", "response"] compile alike.
func martianScope(scope []string) []string {
	out := make([]string, 0, len(martianScopes))
	for _, s := range martianScopes {
		if oneOf(s, scope) {
			out = append(out, s)
		}
	}
	return out
}
