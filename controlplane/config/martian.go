package config

import (
	"encoding/base64"
	"strings"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// The backend-level `modifier/martian` namespace: google/martian's JSON DSL,
// where every modifier is an object with one key, its type. We implement the
// modifiers below; KrakenD CE also links martian's cookie, port, url, stash,
// status, priority and filter modifiers and its own static.Modifier.

const (
	martianHeader      = "header.Modifier"
	martianBlacklist   = "header.Blacklist"
	martianQueryString = "querystring.Modifier"
	martianBody        = "body.Modifier"
	martianFifo        = "fifo.Group"

	scopeRequest  = "request"
	scopeResponse = "response"
)

var (
	martianTypes  = []string{martianBody, martianFifo, martianBlacklist, martianHeader, martianQueryString}
	martianScopes = []string{scopeRequest, scopeResponse}
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
		d.vs.add(mp, KindUnsupported, "martian modifier %q is not supported; supported: %s", m.key, strings.Join(martianTypes, ", "))
		return nil
	}
	if !d.want(m.val, mp, typeObject) {
		return nil
	}
	x := &Martian{Type: m.key}
	fields := map[string]handler{"scope": d.strings(&x.Scope)}
	switch x.Type {
	case martianHeader, martianQueryString:
		fields["name"] = d.str(&x.Name)
		fields["value"] = d.str(&x.Value)
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
		case s == scopeResponse && m.Type == martianQueryString:
			v.vs.add(sp.index(i), KindInvalid, "querystring.Modifier only modifies requests")
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
	}
	return out
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
