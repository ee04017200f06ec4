package config

import (
	"net/url"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Influx is the service-level `telemetry/influx` namespace (krakend-influx
// v2): the telemetry/metrics snapshot pushed to InfluxDB 1.x every TTL.
type Influx struct {
	Address    string
	Username   string
	Password   string
	DB         string
	TTL        *time.Duration // nil: krakend-influx's one minute
	BufferSize int64
}

// krakend-influx's defaults.
const (
	influxDefaultDB  = "krakend"
	influxDefaultTTL = time.Minute
)

func (d *decoder) influx(n *node, p path) *Influx {
	x := &Influx{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"address":     d.str(&x.Address),
		"username":    d.str(&x.Username),
		"password":    d.str(&x.Password),
		"db":          d.str(&x.DB),
		"ttl":         d.optDuration(&x.TTL),
		"buffer_size": d.integer(&x.BufferSize),
	}})
	return x
}

func (v *validator) influx(p path, x *Influx) {
	if x.Address == "" {
		v.vs.add(p.field("address"), KindRequired, "telemetry/influx needs the InfluxDB server's URL (http://host:8086)")
	} else if u, err := url.Parse(x.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.vs.add(p.field("address"), KindInvalid, "%q: want an http or https URL with a host, such as http://influxdb:8086", redactURL(x.Address))
	}
	if x.TTL != nil && *x.TTL <= 0 {
		v.vs.add(p.field("ttl"), KindInvalid, "%s: want a positive duration (KrakenD's ticker panics on it)", *x.TTL)
	}
	if x.BufferSize < 0 || x.BufferSize > influxMaxBuffer {
		v.vs.add(p.field("buffer_size"), KindInvalid, "%d: want between 0 and %d failed batches", x.BufferSize, influxMaxBuffer)
	}
}

// influxMaxBuffer bounds the batches an edge keeps while InfluxDB is down.
const influxMaxBuffer = 1000

func compileInflux(x *Influx) *gatewayv1.InfluxDB {
	out := &gatewayv1.InfluxDB{
		Address:    x.Address,
		Username:   x.Username,
		Password:   x.Password,
		Db:         x.DB,
		TtlMs:      influxDefaultTTL.Milliseconds(),
		BufferSize: int32(x.BufferSize),
	}
	if out.Db == "" {
		out.Db = influxDefaultDB
	}
	if x.TTL != nil {
		out.TtlMs = x.TTL.Milliseconds()
	}
	return out
}
