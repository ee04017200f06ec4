package config

import (
	"regexp"
	"time"
)

// srvName is a DNS name as an SRV lookup takes it ("_api._tcp.example.com",
// "api.service.consul", with or without the final dot).
var srvName = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_\-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_\-]*[A-Za-z0-9_])?)*\.?$`)

// KrakenD's SRV re-resolution period and the least dns_cache_ttl it takes
// (lura sd/dnssrv: a smaller value leaves the default).
const (
	defaultDNSCacheTTL = 30 * time.Second
	minDNSCacheTTL     = time.Second
)

// sdDNS checks a backend with sd: dns and reports whether it is one. Its
// host[0] is the SRV name, looked up as written: KrakenD sanitises hosts
// into "http://name" first unless disable_host_sanitize is set, and then
// looks up a name no DNS holds, so that is a violation here; a host
// inherited from the service is always sanitised by KrakenD. Hosts after
// the first are never read.
func (v *validator) sdDNS(p path, b *Backend) bool {
	if b.SD != "dns" {
		if b.SDScheme != "" {
			v.s.warnings.add(p.field("sd_scheme"), KindNoEffect, "accepted but has no effect: sd_scheme applies to sd: dns backends only")
		}
		return false
	}
	if b.SDScheme != "" {
		v.oneOf(p.field("sd_scheme"), b.SDScheme, sdSchemes)
	}
	hp := p.field("host")
	switch {
	case len(b.Host) == 0:
		return true // reported as a missing host
	case b.hostInherited:
		v.vs.add(p.field("sd"), KindInvalid, "sd: dns looks up host[0] as an SRV name, and KrakenD sanitises the service's hosts into URLs (\"http://...\"), which no SRV lookup finds: set the SRV name in this backend's host, with disable_host_sanitize: true")
		return true
	case !b.DisableHostSanitize:
		v.vs.add(hp.index(0), KindInvalid, "%q: with sd: dns, KrakenD sanitises the host into %q and looks that up as an SRV name, which finds nothing: set disable_host_sanitize: true on this backend", b.Host[0], "http://"+b.Host[0])
		return true
	case !srvName.MatchString(b.Host[0]):
		v.vs.add(hp.index(0), KindInvalid, "%q is not a DNS name to look up SRV records for (such as \"_api._tcp.example.com\")", b.Host[0])
		return true
	}
	for i := 1; i < len(b.Host); i++ {
		v.s.warnings.add(hp.index(i), KindNoEffect, "accepted but has no effect: sd: dns looks up host[0] only (as KrakenD)")
	}
	v.s.usesDNS = true
	return true
}

// dnsCacheTTL is the re-resolution period the edge applies.
func dnsCacheTTL(s *Service) time.Duration {
	if s.DNSCacheTTL < minDNSCacheTTL {
		return defaultDNSCacheTTL
	}
	return s.DNSCacheTTL
}

// warnDNSCacheTTL warns about a dns_cache_ttl that nothing reads, or that
// KrakenD replaces.
func (v *validator) warnDNSCacheTTL() {
	s := v.s
	if !s.DNSCacheTTLSet {
		return
	}
	switch {
	case !s.usesDNS:
		v.s.warnings.add("dns_cache_ttl", KindNoEffect, "accepted but has no effect: it is the re-resolution period of sd: dns backends, and none uses sd: dns (other backend names are resolved on each new connection, as KrakenD's client does)")
	case s.DNSCacheTTL < minDNSCacheTTL:
		v.s.warnings.add("dns_cache_ttl", KindNormalized, "below 1s: KrakenD keeps its default of 30s, and so does the edge")
	}
}
