package config

import (
	"errors"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// hostPattern is KrakenD's host sanitiser (lura config/uri.go), anchored
// and with one-digit ports allowed: KrakenD applies its pattern unanchored
// and accepts a host when it finds exactly one match, which lets trailing
// garbage ("host!") through, and its port group wants 2 to 6 digits, so
// "http://127.0.0.1:9" yields two matches and is refused. We require the
// whole entry to match and take any port from 1 to 65535.
var hostPattern = regexp.MustCompile(`^(https?://)?([a-zA-Z0-9._\-]+)(:[0-9]{1,5})?/?$`)

// sanitizeHost returns the base URL the edge dials for one `host` entry:
// "http://" is prepended when the scheme is missing and the trailing slash
// is dropped. With disable_host_sanitize the entry is used as written, but
// it must still be an absolute http or https URL without a path (service
// discovery other than static is not supported, so nothing else could be
// dialled).
func sanitizeHost(host string, disableSanitize bool) (string, error) {
	if host == "" {
		return "", errors.New("empty host")
	}
	if disableSanitize {
		u, err := url.Parse(host)
		switch {
		case err != nil:
			return "", errors.New("not a URL")
		case u.Scheme != "http" && u.Scheme != "https":
			return "", errors.New("scheme must be http or https")
		case u.Host == "":
			return "", errors.New("missing host name")
		case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
			return "", errors.New("a host must not carry user info, a path, a query or a fragment")
		}
		return strings.TrimSuffix(host, "/"), nil
	}
	m := hostPattern.FindStringSubmatch(host)
	if m == nil {
		if i := strings.Index(host, "://"); i > 0 && !strings.HasPrefix(host, "http") {
			return "", errors.New("scheme must be http or https")
		}
		return "", errors.New("want [http[s]://]host[:port] (set disable_host_sanitize to use it as written)")
	}
	scheme, name, port := m[1], m[2], m[3]
	if scheme == "" {
		scheme = "http://"
	}
	if port != "" {
		if n, err := strconv.Atoi(port[1:]); err != nil || n < 1 || n > 65535 {
			return "", errors.New("port must be between 1 and 65535")
		}
	}
	return scheme + name + port, nil
}
