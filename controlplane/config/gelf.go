package config

import (
	"net"
	"strconv"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// GELF is the service-level `telemetry/gelf` namespace (krakend-gelf v2):
// the log lines and the access log sent to a Graylog input.
type GELF struct {
	Address   string
	EnableTCP bool
}

func (d *decoder) gelf(n *node, p path) *GELF {
	g := &GELF{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"address":    d.str(&g.Address),
		"enable_tcp": d.boolean(&g.EnableTCP),
	}})
	return g
}

func (v *validator) gelf(p path, g *GELF) {
	if g.Address == "" {
		v.vs.add(p.field("address"), KindRequired, "telemetry/gelf needs the Graylog input's address (host:port)")
		return
	}
	host, port, err := net.SplitHostPort(g.Address)
	if err != nil || host == "" {
		v.vs.add(p.field("address"), KindInvalid, "%q: want host:port", g.Address)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.vs.add(p.field("address"), KindInvalid, "%q: want a port between 1 and 65535", g.Address)
	}
}

// Logstash is the service-level `telemetry/logstash` namespace
// (krakend-logstash v2), which KrakenD turns on by its presence.
type Logstash struct{ Enabled bool }

func (d *decoder) logstash(n *node, p path) *Logstash {
	l := &Logstash{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"enabled": d.noEffect(d.boolean(&l.Enabled),
			"KrakenD turns telemetry/logstash on by the namespace's presence, whatever enabled says; remove the namespace to turn it off"),
	}})
	return l
}

func compileGELF(g *GELF) *gatewayv1.GELF {
	return &gatewayv1.GELF{Address: g.Address, EnableTcp: g.EnableTCP}
}
