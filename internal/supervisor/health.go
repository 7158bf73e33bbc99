package supervisor

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Defaults of the active health check of web instances; see Policy.
const (
	DefaultHealthInterval = 10 * time.Second
	DefaultHealthTimeout  = 5 * time.Second
	DefaultHealthFailures = 3
)

// checkHealth probes a running web instance every HealthInterval until ctx
// ends. A probe is an HTTP GET of the health path (or "/") that must
// answer within HealthTimeout: with a health path, below 500; without
// one, with any status at all. A TCP connect is not enough: the kernel
// accepts connections for a stopped (SIGSTOP) or wedged server, and for a
// uWSGI master whose workers all died. After HealthFailures failures in a
// row it sends the reason on failed and returns; the owner then restarts
// the instance.
func (in *instance) checkHealth(ctx context.Context, failed chan<- string) {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: in.policy.HealthTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t := time.NewTicker(in.policy.HealthInterval)
	defer t.Stop()
	fails := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := in.probe(ctx, client)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if fails > 0 {
				in.log.Info("health check passes again", "after_failures", fails)
				in.update(func(st *InstanceStatus) { st.HealthFailures = 0 })
			}
			fails = 0
			continue
		}
		fails++
		in.update(func(st *InstanceStatus) { st.HealthFailures = fails })
		in.log.Warn("health check failed", "failures", fails, "of", in.policy.HealthFailures, "err", err)
		if fails >= in.policy.HealthFailures {
			failed <- fmt.Sprintf("health check failed %d times in a row: %v", fails, err)
			return
		}
	}
}

// probe makes one health check request.
func (in *instance) probe(ctx context.Context, client *http.Client) error {
	path := in.spec.HealthPath
	if path == "" {
		path = "/"
	} else if path[0] != '/' {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.address()+path, nil)
	if err != nil {
		return err
	}
	if in.spec.HealthHost != "" {
		req.Host = in.spec.HealthHost
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if in.spec.HealthPath != "" && resp.StatusCode >= 500 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return nil
}
