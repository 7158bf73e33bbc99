package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// CloudflareLists are where Cloudflare publishes its address ranges, one
// CIDR a line.
var CloudflareLists = []string{"https://www.cloudflare.com/ips-v4", "https://www.cloudflare.com/ips-v6"}

// FetchCloudflareRanges downloads the ranges from urls.
func FetchCloudflareRanges(ctx context.Context, client *http.Client, urls ...string) ([]string, error) {
	var out []string
	for _, u := range urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("%s: %s", u, resp.Status)
		}
		sc := bufio.NewScanner(io.LimitReader(resp.Body, 1<<20))
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); line != "" {
				out = append(out, line)
			}
		}
		err = sc.Err()
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
	}
	if _, err := parseCIDRs(out); err != nil {
		return nil, err
	}
	return out, nil
}

// RefreshCloudflare keeps the Cloudflare ranges current while ctx lasts:
// once a route uses NGINX_CLOUDFLARE_ACL, it fetches the published lists
// (every day; every hour after a failure). Until a fetch succeeds, and
// whenever the network does not allow it, the built-in list stays in use.
func (s *Server) RefreshCloudflare(ctx context.Context, client *http.Client, urls ...string) error {
	if len(urls) == 0 {
		urls = CloudflareLists
	}
	const (
		checkEvery = time.Minute // how often to look for a route that needs the list
		okEvery    = 24 * time.Hour
		failEvery  = time.Hour
	)
	var next time.Time
	t := time.NewTicker(checkEvery)
	defer t.Stop()
	for {
		if s.usesCloudflare() && !time.Now().Before(next) {
			fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			ranges, err := FetchCloudflareRanges(fctx, client, urls...)
			cancel()
			if err == nil {
				err = s.SetCloudflareRanges(ranges)
			}
			if err != nil {
				s.log.Info("cloudflare ranges: keeping the list in use", "err", err)
				next = time.Now().Add(failEvery)
			} else {
				s.log.Info("cloudflare ranges refreshed", "ranges", len(ranges))
				next = time.Now().Add(okEvery)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// usesCloudflare reports whether a route has NGINX_CLOUDFLARE_ACL on.
func (s *Server) usesCloudflare() bool {
	for _, rt := range s.table.Load().apps {
		if rt.CloudflareACL {
			return true
		}
	}
	return false
}
