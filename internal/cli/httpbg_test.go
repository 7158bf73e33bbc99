package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"

	"github.com/rogpeppe/go-internal/testscript"
)

// bgRequest is a request a script sent in the background: its answer,
// once there, as httpwait prints it.
type bgRequest struct {
	done chan struct{}
	out  string
	err  error
}

// bgRequests are the scripts' background requests, by script and name.
var (
	bgMu       sync.Mutex
	bgRequests = map[*testscript.TestScript]map[string]*bgRequest{}
)

// dialWhenListening dials addr, waiting for a listener there (a daemon
// starting) until ctx ends: a refused connection is tried again.
func dialWhenListening(ts *testscript.TestScript) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var (
			c   net.Conn
			err error
		)
		polling(ts, func() bool {
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return !errors.Is(err, syscall.ECONNREFUSED)
		})
		return c, err
	}
}

// httpstart NAME [-host H] URL: send GET URL (with Host H) in the
// background, on a connection of its own, waiting for the server to
// listen first; httpwait NAME prints its answer.
func cmdHTTPStart(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 || neg {
		ts.Fatalf("usage: httpstart NAME [-host H] URL")
	}
	name, args := args[0], args[1:]
	host := ""
	if len(args) > 2 && args[0] == "-host" {
		host, args = args[1], args[2:]
	}
	if len(args) != 1 {
		ts.Fatalf("usage: httpstart NAME [-host H] URL")
	}
	req, err := http.NewRequest(http.MethodGet, args[0], nil)
	ts.Check(err)
	req.Host = host
	req.Close = true
	client := &http.Client{Transport: &http.Transport{DialContext: dialWhenListening(ts), DisableKeepAlives: true}}
	bg := &bgRequest{done: make(chan struct{})}
	go func() {
		defer close(bg.done)
		resp, err := client.Do(req)
		if err != nil {
			bg.err = err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		bg.err = err
		bg.out = fmt.Sprintf("%d\n", resp.StatusCode)
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			bg.out += "Retry-After: " + ra + "\n"
		}
		bg.out += string(b)
	}()
	ts.Defer(func() { <-bg.done })
	bgMu.Lock()
	if bgRequests[ts] == nil {
		bgRequests[ts] = map[string]*bgRequest{}
	}
	bgRequests[ts][name] = bg
	bgMu.Unlock()
}

// httpwait NAME: wait for the answer to the background request NAME (the
// script's timeout is the bound) and print its status code, its
// Retry-After field if any, and its body.
func cmdHTTPWait(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: httpwait NAME")
	}
	bgMu.Lock()
	bg := bgRequests[ts][args[0]]
	bgMu.Unlock()
	if bg == nil {
		ts.Fatalf("httpwait: no request %q", args[0])
	}
	<-bg.done
	if bg.err != nil {
		ts.Fatalf("httpwait %s: %v", args[0], bg.err)
	}
	fmt.Fprint(ts.Stdout(), bg.out)
}
