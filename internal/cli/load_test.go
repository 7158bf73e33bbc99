package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// loadResult is what a steady load saw.
type loadResult struct {
	total    int
	failures []string       // when and how each failed request failed
	bodies   map[string]int // the bodies of the requests that succeeded
	// refused counts the connections refused before the first answer,
	// when the load was started before the daemon listens (waitListen).
	refused  int
	answered bool
}

// load is a steady load running until stop.
type load struct {
	// waitListen counts connections refused before the first answer
	// apart, not as failures.
	waitListen bool

	mu   sync.Mutex
	res  loadResult
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// steadyLoad sends GET url with Host host every 5 ms from each of two
// clients (about 400 requests per second, fewer on a busy machine) until
// stop is called. A request fails on an error or any status but 200.
func steadyLoad(client *http.Client, url, host string, waitListen bool) *load {
	l := &load{res: loadResult{bodies: map[string]int{}}, done: make(chan struct{}), waitListen: waitListen}
	for range 2 {
		l.wg.Go(func() {
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-l.done:
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
				l.mu.Lock()
				l.res.total++
				refused := err != nil && errors.Is(err, syscall.ECONNREFUSED)
				switch {
				case l.waitListen && !l.res.answered && refused:
					l.res.refused++
				case msg != "":
					l.res.failures = append(l.res.failures, msg)
				default:
					l.res.bodies[string(body)]++
				}
				if resp != nil {
					l.res.answered = true
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

// sent is how many requests have been answered or failed so far, not
// counting those refused before the daemon listened.
func (l *load) sent() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.res.total - l.res.refused
}

// stop ends the load and reports what its requests saw.
func (l *load) stop() loadResult {
	l.once.Do(func() { close(l.done) })
	l.wg.Wait()
	return l.res
}

// loads are the scripts' running loads, by script and name.
var (
	loadsMu sync.Mutex
	loads   = map[*testscript.TestScript]map[string]*load{}
)

// loadstart [-listen] NAME URL HOST: start a steady load of GET URL with
// Host HOST (about 400 requests per second) until loadcheck NAME. With
// -listen the load starts before the daemon listens: connections refused
// before the first answer are counted apart, not as failures; from the
// first answer on, every request must succeed.
func cmdLoadStart(ts *testscript.TestScript, neg bool, args []string) {
	waitListen := len(args) > 0 && args[0] == "-listen"
	if waitListen {
		args = args[1:]
	}
	if len(args) != 3 || neg {
		ts.Fatalf("usage: loadstart [-listen] NAME URL HOST")
	}
	l := steadyLoad(&http.Client{Timeout: 10 * time.Second}, args[1], args[2], waitListen)
	loadsMu.Lock()
	if loads[ts] == nil {
		loads[ts] = map[string]*load{}
	}
	loads[ts][args[0]] = l
	loadsMu.Unlock()
	ts.Defer(func() { l.stop() })
}

// loadcheck NAME MIN: wait until the load has sent at least MIN requests
// (how long that takes depends on how busy the machine is), then stop it;
// fail if any request failed. The distinct bodies seen go to stdout.
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
	enough := polling(ts, func() bool { return l.sent() >= min })
	res := l.stop()
	for body, n := range res.bodies {
		fmt.Fprintf(ts.Stdout(), "%d x %s\n", n, body)
	}
	ts.Logf("load %s: %d requests, %d failed, %d refused before the daemon listened", args[0], res.total, len(res.failures), res.refused)
	if len(res.failures) > 0 {
		shown := res.failures
		if len(shown) > 10 {
			shown = shown[:10]
		}
		ts.Fatalf("load %s: %d of %d requests failed; first: %q", args[0], len(res.failures), res.total, shown)
	}
	if !enough {
		ts.Fatalf("load %s: gave up waiting for %d requests; %d were sent", args[0], min, res.total)
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
