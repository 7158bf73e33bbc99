package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// probeUntilReady checks addr until it is ready or ctx ends, and reports
// whether it became ready. Ready means: it accepts a TCP connection, or,
// with a health path, answers an HTTP GET for it (with Host: host, if set)
// with a status below 500. After each check that fails, seen is told what
// answered. The checks start 20ms apart and slow down to 500ms. When owned
// is set, an answer counts only when owned also agrees: the listener must
// be the instance's own, not a process that took its port first.
func probeUntilReady(ctx context.Context, addr, path, host string, owned func() (string, bool), seen func(answer string)) bool {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	wait := 20 * time.Millisecond
	for {
		answer, ok := ready(ctx, client, addr, path, host)
		if ok && owned != nil {
			answer, ok = owned()
		}
		if ok {
			return true
		}
		if ctx.Err() == nil {
			seen(answer)
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

// ready checks addr once. When it is not ready, the answer says what the
// check was and what answered it.
func ready(ctx context.Context, client *http.Client, addr, path, host string) (answer string, ok bool) {
	if path == "" {
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Sprintf("nothing accepted a connection on %s (%v)", addr, unwrapNet(err)), false
		}
		_ = c.Close()
		return "", true
	}
	if path[0] != '/' {
		path = "/" + path
	}
	probe := "GET http://" + addr + path
	if host != "" {
		probe += " (Host: " + host + ")"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return fmt.Sprintf("%s: %v", probe, err), false
	}
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Sprintf("%s: no answer (%v)", probe, unwrapNet(err)), false
	}
	_ = resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Sprintf("%s answered %s", probe, resp.Status), false
	}
	return "", true
}

// unwrapNet drops the operation and address a net error repeats ("dial
// tcp 127.0.0.1:5000: connect: connection refused" becomes "connect:
// connection refused"), since the caller names the address.
func unwrapNet(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
