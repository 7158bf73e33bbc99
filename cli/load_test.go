package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// load is a steady stream of requests a script runs while it changes the
// app, to show that no request fails during rollouts.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	total    int
	failures []string
	bodies   map[string]int
}

var (
	loadsMu sync.Mutex
	loads   = map[*testscript.TestScript]map[string]*load{}
)

// loadstart NAME URL HOST: start 2 clients sending GET URL with Host HOST
// every 5 ms each (about 400 requests per second), until loadcheck NAME.
func cmdLoadStart(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 || neg {
		ts.Fatalf("usage: loadstart NAME URL HOST")
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, bodies: map[string]int{}}
	client := &http.Client{Timeout: 10 * time.Second}
	for range 2 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				req, _ := http.NewRequest(http.MethodGet, args[1], nil)
				req.Host = args[2]
				resp, err := client.Do(req)
				msg := ""
				var body []byte
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
				l.mu.Lock()
				l.total++
				if msg != "" {
					l.failures = append(l.failures, msg)
				} else {
					l.bodies[string(body)]++
				}
				l.mu.Unlock()
			}
		}()
	}
	loadsMu.Lock()
	if loads[ts] == nil {
		loads[ts] = map[string]*load{}
	}
	loads[ts][args[0]] = l
	loadsMu.Unlock()
	ts.Defer(func() { cancel(); l.wg.Wait() })
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
	l := loads[ts][args[0]]
	loadsMu.Unlock()
	if l == nil {
		ts.Fatalf("loadcheck: no load %q", args[0])
	}
	l.cancel()
	l.wg.Wait()
	for body, n := range l.bodies {
		fmt.Fprintf(ts.Stdout(), "%d x %s\n", n, body)
	}
	ts.Logf("load %s: %d requests, %d failed", args[0], l.total, len(l.failures))
	if len(l.failures) > 0 {
		shown := l.failures
		if len(shown) > 10 {
			shown = shown[:10]
		}
		ts.Fatalf("load %s: %d of %d requests failed; first: %q", args[0], len(l.failures), l.total, shown)
	}
	if l.total < min {
		ts.Fatalf("load %s: only %d requests were sent, want at least %d", args[0], l.total, min)
	}
}
