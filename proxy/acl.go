package proxy

import (
	"net"
	"sync"
)

// cloudflareRanges are the addresses Cloudflare's proxies connect from,
// as published at https://www.cloudflare.com/ips/.
var cloudflareRanges = []string{
	"173.245.48.0/20", "103.21.244.0/22", "103.22.200.0/22", "103.31.4.0/22",
	"141.101.64.0/18", "108.162.192.0/18", "190.93.240.0/20", "188.114.96.0/20",
	"197.234.240.0/22", "198.41.128.0/17", "162.158.0.0/15", "104.16.0.0/13",
	"104.24.0.0/14", "172.64.0.0/13", "131.0.72.0/22",
	"2400:cb00::/32", "2606:4700::/32", "2803:f800::/32", "2405:b500::/32",
	"2405:8100::/32", "2a06:98c0::/29", "2c0f:f248::/32",
}

var cloudflareNets = sync.OnceValue(func() []*net.IPNet {
	nets := make([]*net.IPNet, 0, len(cloudflareRanges))
	for _, c := range cloudflareRanges {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			panic(err)
		}
		nets = append(nets, n)
	}
	return nets
})

// isCloudflare reports whether ip belongs to Cloudflare.
func isCloudflare(ip net.IP) bool {
	if ip == nil {
		return false
	}
	for _, n := range cloudflareNets() {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// allowed reports whether the Cloudflare ACL of rt lets ip in: Cloudflare,
// loopback and the route's AllowIPs.
func (rt *route) allowed(ip net.IP) bool {
	if ip == nil {
		return false
	}
	if ip.IsLoopback() || isCloudflare(ip) {
		return true
	}
	for _, n := range rt.allow {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}
