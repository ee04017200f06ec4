package mq

import (
	"context"
	"net"
	"time"
)

// dialTimeout bounds one TCP connect to the broker (amqp091's default).
const dialTimeout = 30 * time.Second

// netDialer dials the broker under the connection's context, so closing a
// producer interrupts a connect in progress.
type netDialer struct{ ctx context.Context }

func (d *netDialer) dial(network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: dialTimeout}
	return nd.DialContext(d.ctx, network, addr)
}
