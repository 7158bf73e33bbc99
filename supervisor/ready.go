package supervisor

import (
	"context"
	"net"
	"net/http"
	"time"
)

// probeUntilReady checks addr until it is ready or ctx ends, and reports
// whether it became ready. Ready means: it accepts a TCP connection, or,
// with a health path, answers an HTTP GET for it (with Host: host, if set)
// with a status below 500. The checks start 20ms apart and slow down to
// 500ms.
func probeUntilReady(ctx context.Context, addr, path, host string) bool {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	wait := 20 * time.Millisecond
	for {
		if ready(ctx, client, addr, path, host) {
			return true
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		wait = min(wait*2, 500*time.Millisecond)
	}
}

func ready(ctx context.Context, client *http.Client, addr, path, host string) bool {
	if path == "" {
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	}
	if path[0] != '/' {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return false
	}
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode < 500
}
