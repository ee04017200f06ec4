package config

import (
	"encoding/base64"
	"regexp"
	"strings"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// The backend-level `modifier/martian` namespace: google/martian's JSON DSL,
// where every modifier is an object with one key, its type. We implement the
// modifiers below; KrakenD CE also links martian's cookie, port, url
// filters, status modifiers, verifiers and its own static.Modifier, which
// are refused as unsupported (see martianMissing).

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

	scopeRequest  = "request"
	scopeResponse = "response"
)

var (
	martianTypes = []string{martianBody, martianFifo, martianAppend, martianBlacklist, martianCopy, martianHdrFilter,
		martianID, martianHeader, martianRegexFilter, martianPriority, martianQSFilter, martianQueryString, martianStash, martianURL}
	// martianMissing are the modifiers KrakenD CE 2.12 registers that the
	// edge does not implement.
	martianMissing = map[string]bool{
		"cookie.Modifier": true, "cookie.Filter": true, "port.Modifier": true, "port.Filter": true,
		"url.Filter": true, "url.RegexFilter": true, "url.Verifier": true, "status.Modifier": true,
		"status.Verifier": true, "header.Verifier": true, "querystring.Verifier": true, "static.Modifier": true,
	}
	// martianRequestOnly implement martian's RequestModifier only: their
	// default scope is the request, and a response scope is an error.
	martianRequestOnly = []string{martianQueryString, martianID, martianURL}
	martianScopes      = []string{scopeRequest, scopeResponse}
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
		what := "not a martian modifier KrakenD CE registers"
		if martianMissing[m.key] {
			what = "registered by KrakenD CE but not implemented by this gateway"
		}
		d.vs.add(mp, KindUnsupported, "martian modifier %q is %s; supported: %s", m.key, what, strings.Join(martianTypes, ", "))
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
	case martianURL:
		if m.Scheme != "" && m.Scheme != "http" && m.Scheme != "https" {
			v.vs.add(tp.field("scheme"), KindInvalid, "%q: the edge calls http and https backends only", m.Scheme)
		}
		if m.Scheme == "" && m.Host == "" && m.Path == "" && m.Query == "" {
			v.s.warnings.add(tp, KindNoEffect, "accepted but has no effect: no scheme, host, path or query to set")
		}
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
