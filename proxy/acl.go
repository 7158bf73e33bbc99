package proxy

import (
	"errors"
	"fmt"
	"net"
	"strings"
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

// builtinCloudflare is cloudflareRanges parsed.
var builtinCloudflare = sync.OnceValue(func() []*net.IPNet {
	nets, err := parseCIDRs(cloudflareRanges)
	if err != nil {
		panic(err)
	}
	return nets
})

// parseCIDRs parses address ranges ("192.0.2.0/24").
func parseCIDRs(cidrs []string) ([]*net.IPNet, error) {
	nets := make([]*net.IPNet, 0, len(cidrs))
	for _, c := range cidrs {
		_, n, err := net.ParseCIDR(strings.TrimSpace(c))
		if err != nil {
			return nil, err
		}
		nets = append(nets, n)
	}
	return nets, nil
}

// cloudflareNets are the ranges in use: the built-in list until
// SetCloudflareRanges replaces it.
func (s *Server) cloudflareNets() []*net.IPNet {
	if p := s.cloudflare.Load(); p != nil {
		return *p
	}
	return builtinCloudflare()
}

// isCloudflare reports whether ip belongs to Cloudflare.
func (s *Server) isCloudflare(ip net.IP) bool {
	if ip == nil {
		return false
	}
	for _, n := range s.cloudflareNets() {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// SetCloudflareRanges replaces the built-in list of Cloudflare's address
// ranges, for NGINX_CLOUDFLARE_ACL. Nothing changes if a range is bad or
// the list is empty.
func (s *Server) SetCloudflareRanges(cidrs []string) error {
	nets, err := parseCIDRs(cidrs)
	if err != nil {
		return fmt.Errorf("cloudflare ranges: %w", err)
	}
	if len(nets) == 0 {
		return errors.New("cloudflare ranges: the list is empty")
	}
	s.cloudflare.Store(&nets)
	return nil
}

// allowed reports whether the Cloudflare ACL of rt lets ip in: Cloudflare,
// loopback and the route's AllowIPs.
func (rt *route) allowed(ip net.IP, cloudflare func(net.IP) bool) bool {
	if ip == nil {
		return false
	}
	if ip.IsLoopback() || cloudflare(ip) {
		return true
	}
	for _, n := range rt.allow {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}
