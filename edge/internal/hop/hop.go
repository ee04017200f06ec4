// Package hop names the hop-by-hop headers: those that describe one
// connection and are never forwarded nor stored (RFC 9110 §7.6.1, plus
// Proxy-Connection and Keep-Alive that old clients still send). Headers
// listed in a message's Connection header are hop-by-hop for that message
// too; checking them is the caller's job.
//
// hop imports only edge/internal/ascii.
package hop

import "github.com/apigw/gateway/edge/internal/ascii"

// Headers is the list, in canonical form. It must not be modified.
var Headers = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// Is reports whether the header name k (any case) is hop-by-hop.
func Is(k []byte) bool {
	for _, h := range Headers {
		if ascii.EqualFold(k, h) {
			return true
		}
	}
	return false
}
