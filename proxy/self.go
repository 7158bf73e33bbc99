package proxy

import (
	"errors"
	"net"
)

// errSelf is returned for a backend that is one of the proxy's own
// listeners: forwarding there would loop.
var errSelf = errors.New("backend is the proxy's own listener")

// ownAddrs lists every host:port the listener at addr answers on: the
// address itself, or, for an unspecified host (":80", "0.0.0.0:80",
// "[::]:80"), the port on every local interface address.
func ownAddrs(addr string) map[string]bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	own := map[string]bool{}
	ip := net.ParseIP(host)
	if ip != nil && !ip.IsUnspecified() {
		own[net.JoinHostPort(ip.String(), port)] = true
		return own
	}
	ifaddrs, _ := net.InterfaceAddrs()
	for _, a := range ifaddrs {
		if n, ok := a.(*net.IPNet); ok {
			own[net.JoinHostPort(n.IP.String(), port)] = true
		}
	}
	for _, h := range []string{"127.0.0.1", "::1", "0.0.0.0", "::"} {
		own[net.JoinHostPort(h, port)] = true
	}
	return own
}

// selfKey returns addr with its IP address in its canonical form, as
// ownAddrs lists the proxy's own addresses ("" for no host:port).
func selfKey(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return net.JoinHostPort(host, port)
}
