package config

import (
	"fmt"
	"sort"
	"strconv"

	"google.golang.org/protobuf/reflect/protoreflect"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Change operations.
const (
	ChangeAdded   = "added"
	ChangeRemoved = "removed"
	ChangeChanged = "changed"
)

// ServiceSubject is the Change subject of service-level settings.
const ServiceSubject = "service"

// Diff lists what changes from old to new (either may be nil, meaning "no
// configuration"): first the service, then endpoints matched by name
// ("GET /users/{id}") in new's order (added or changed), then the removed
// ones in old's order. A changed subject lists the changed field paths with
// proto field names, e.g. "backends[0].url_pattern", `backends[1].mapping["a"]`;
// lists of messages are compared element by element and a trailing element
// present on one side only is named by its index. A schema_version change
// is reported as a "service" field. Features are derived from endpoints and
// not reported on their own.
func Diff(old, new *gatewayv1.Snapshot) []*gatewayv1.Change {
	var changes []*gatewayv1.Change

	oldSvc, newSvc := old.GetService(), new.GetService()
	switch {
	case oldSvc == nil && newSvc != nil:
		changes = append(changes, &gatewayv1.Change{Op: ChangeAdded, Subject: ServiceSubject})
	case oldSvc != nil && newSvc == nil:
		changes = append(changes, &gatewayv1.Change{Op: ChangeRemoved, Subject: ServiceSubject})
	case oldSvc != nil:
		var fields []string
		if old.GetSchemaVersion() != new.GetSchemaVersion() {
			fields = append(fields, "schema_version")
		}
		fields = append(fields, diffMessage(oldSvc.ProtoReflect(), newSvc.ProtoReflect(), "")...)
		if len(fields) > 0 {
			changes = append(changes, &gatewayv1.Change{Op: ChangeChanged, Subject: ServiceSubject, Fields: fields})
		}
	}

	oldByName := make(map[string]*gatewayv1.Endpoint, len(old.GetEndpoints()))
	for _, e := range old.GetEndpoints() {
		oldByName[e.GetName()] = e
	}
	inNew := make(map[string]bool, len(new.GetEndpoints()))
	for _, e := range new.GetEndpoints() {
		inNew[e.GetName()] = true
		prev, ok := oldByName[e.GetName()]
		if !ok {
			changes = append(changes, &gatewayv1.Change{Op: ChangeAdded, Subject: e.GetName()})
			continue
		}
		if fields := diffMessage(prev.ProtoReflect(), e.ProtoReflect(), ""); len(fields) > 0 {
			changes = append(changes, &gatewayv1.Change{Op: ChangeChanged, Subject: e.GetName(), Fields: fields})
		}
	}
	for _, e := range old.GetEndpoints() {
		if !inNew[e.GetName()] {
			changes = append(changes, &gatewayv1.Change{Op: ChangeRemoved, Subject: e.GetName()})
		}
	}
	return changes
}

// diffMessage returns the paths of the fields that differ between a and b
// (messages of the same type), in field-number order.
func diffMessage(a, b protoreflect.Message, prefix string) []string {
	var out []string
	fields := a.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		name := prefix + string(fd.Name())
		switch {
		case fd.IsList():
			out = append(out, diffList(fd, a.Get(fd).List(), b.Get(fd).List(), name)...)
		case fd.IsMap():
			out = append(out, diffMap(fd, a.Get(fd).Map(), b.Get(fd).Map(), name)...)
		case fd.Message() != nil:
			ha, hb := a.Has(fd), b.Has(fd)
			switch {
			case ha && hb:
				out = append(out, diffMessage(a.Get(fd).Message(), b.Get(fd).Message(), name+".")...)
			case ha != hb:
				out = append(out, name)
			}
		default:
			if !a.Get(fd).Equal(b.Get(fd)) {
				out = append(out, name)
			}
		}
	}
	return out
}

func diffList(fd protoreflect.FieldDescriptor, a, b protoreflect.List, name string) []string {
	if fd.Message() == nil {
		if a.Len() != b.Len() {
			return []string{name}
		}
		for i := 0; i < a.Len(); i++ {
			if !a.Get(i).Equal(b.Get(i)) {
				return []string{name}
			}
		}
		return nil
	}
	var out []string
	for i := 0; i < max(a.Len(), b.Len()); i++ {
		elem := name + "[" + strconv.Itoa(i) + "]"
		if i >= a.Len() || i >= b.Len() {
			out = append(out, elem)
			continue
		}
		out = append(out, diffMessage(a.Get(i).Message(), b.Get(i).Message(), elem+".")...)
	}
	return out
}

func diffMap(fd protoreflect.FieldDescriptor, a, b protoreflect.Map, name string) []string {
	keys := make(map[string]protoreflect.MapKey)
	collect := func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys[fmt.Sprint(k.Interface())] = k
		return true
	}
	a.Range(collect)
	b.Range(collect)
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)

	var out []string
	for _, ks := range sorted {
		k := keys[ks]
		elem := name + "[" + strconv.Quote(ks) + "]"
		va, vb := a.Get(k), b.Get(k)
		switch {
		case !a.Has(k) || !b.Has(k):
			out = append(out, elem)
		case fd.MapValue().Message() != nil:
			out = append(out, diffMessage(va.Message(), vb.Message(), elem+".")...)
		case !va.Equal(vb):
			out = append(out, elem)
		}
	}
	return out
}
