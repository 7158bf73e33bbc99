package cli

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// loadResult is what a steady load saw.
type loadResult struct {
	total    int
	failures []string       // when and how each failed request failed
	bodies   map[string]int // the bodies of the requests that succeeded
}

// steadyLoad sends GET url with Host host every 5 ms from each of two
// clients (about 400 requests per second) until the returned stop is
// called, which reports what the requests saw. A request fails on an error
// or any status but 200.
func steadyLoad(client *http.Client, url, host string) (stop func() loadResult) {
	done := make(chan struct{})
	var (
		mu  sync.Mutex
		res = loadResult{bodies: map[string]int{}}
		wg  sync.WaitGroup
	)
	for range 2 {
		wg.Go(func() {
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				msg, body := "", []byte(nil)
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Host = host
				resp, err := client.Do(req)
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						msg = fmt.Sprintf("%s: %d %q", time.Now().Format("15:04:05.000"), resp.StatusCode, body)
					}
				}
				if err != nil {
					msg = fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err)
				}
				mu.Lock()
				res.total++
				if msg != "" {
					res.failures = append(res.failures, msg)
				} else {
					res.bodies[string(body)]++
				}
				mu.Unlock()
			}
		})
	}
	var once sync.Once
	return func() loadResult {
		once.Do(func() { close(done) })
		wg.Wait()
		return res
	}
}

// loads are the scripts' running loads, by script and name.
var (
	loadsMu sync.Mutex
	loads   = map[*testscript.TestScript]map[string]func() loadResult{}
)

// loadstart NAME URL HOST: start a steady load of GET URL with Host HOST
// (about 400 requests per second) until loadcheck NAME.
func cmdLoadStart(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 || neg {
		ts.Fatalf("usage: loadstart NAME URL HOST")
	}
	stop := steadyLoad(&http.Client{Timeout: 10 * time.Second}, args[1], args[2])
	loadsMu.Lock()
	if loads[ts] == nil {
		loads[ts] = map[string]func() loadResult{}
	}
	loads[ts][args[0]] = stop
	loadsMu.Unlock()
	ts.Defer(func() { stop() })
}

// loadcheck NAME MIN: stop the load; fail if any request failed or fewer
// than MIN were sent. The distinct bodies seen go to stdout.
func cmdLoadCheck(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: loadcheck NAME MIN")
	}
	min, err := strconv.Atoi(args[1])
	ts.Check(err)
	loadsMu.Lock()
	stop := loads[ts][args[0]]
	loadsMu.Unlock()
	if stop == nil {
		ts.Fatalf("loadcheck: no load %q", args[0])
	}
	res := stop()
	for body, n := range res.bodies {
		fmt.Fprintf(ts.Stdout(), "%d x %s\n", n, body)
	}
	ts.Logf("load %s: %d requests, %d failed", args[0], res.total, len(res.failures))
	if len(res.failures) > 0 {
		shown := res.failures
		if len(shown) > 10 {
			shown = shown[:10]
		}
		ts.Fatalf("load %s: %d of %d requests failed; first: %q", args[0], len(res.failures), res.total, shown)
	}
	if res.total < min {
		ts.Fatalf("load %s: only %d requests were sent, want at least %d", args[0], res.total, min)
	}
}

// holdconns N ADDR HOST: open N connections to ADDR, send one keep-alive
// request for Host HOST on each and leave them open, idle, until the
// script ends (the clients beyond what the server accepts wait in its
// backlog).
func cmdHoldConns(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 || neg {
		ts.Fatalf("usage: holdconns N ADDR HOST")
	}
	n, err := strconv.Atoi(args[0])
	ts.Check(err)
	var conns []net.Conn
	ts.Defer(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.Dial("tcp", args[1])
		ts.Check(err)
		conns = append(conns, c)
		_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+args[2]+"\r\n\r\n")
		ts.Check(err)
	}
}
