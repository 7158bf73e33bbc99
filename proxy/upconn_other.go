//go:build !unix

package proxy

import "net"

// usable reports whether an idle backend connection may carry a request;
// without a non-blocking peek it trusts the connection, and the request
// is sent again when nothing of it reached the backend.
func usable(net.Conn) bool { return true }
