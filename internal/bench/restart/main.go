// Command restart measures what the daemon's own signals cost the apps
// behind it, through the real binary and a real Python app, and reports
// the numbers docs/PERFORMANCE.md quotes (median of -runs):
//
//   - sse-push: how long `piku config:set` takes with one event-stream
//     client open on the old instance (default drain bound, 30 s);
//   - term-inflight: the status a 3 s request in flight gets when the
//     daemon receives SIGTERM, and how long the daemon takes to exit;
//   - hup, term+start, kill+start: three apps (Python, Node, and a Python
//     app that takes 3 s to boot, as a framework app does), each under a
//     steady load (one client, about 100 requests per second), the failed
//     requests and the longest gap between two answered ones, per app, for
//     SIGHUP (a restart in place), and for SIGTERM or SIGKILL followed at
//     once by a new daemon (which adopts the apps a SIGKILL left);
//   - recreate: under an open-loop load of -rate requests per second (150;
//     each request sent on time, whatever the others wait), `piku restart`
//     of a second app that pins its PORT and sets PIKU_ROLLOUT=recreate, so
//     the proxy holds its requests while the old instance stops and the new
//     one starts: the failed requests, the longest request (the longest
//     hold) and the p99 latency of the requests sent during the run.
//
// Usage: go run ./internal/bench/restart -piku ./bin/piku [-runs 5] [-port 41000] [-only recreate|restarts] [-rate 150] [-hold-requests N]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// nodeServer is the Node app of the restart measures.
const nodeServer = `require('http').createServer((req, res) => res.end('node\n')).listen(process.env.PORT, '127.0.0.1');
`

// slowServer is the Python app that takes 3 s to boot.
const slowServer = `import time
time.sleep(3)
exec(open("server.py").read())
`

const server = `import http.server, os, signal, sys, time

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/events":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            while True:
                self.wfile.write(b"data: tick\n\n")
                self.wfile.flush()
                time.sleep(0.2)
        if self.path == "/slow":
            time.sleep(3)
        body = ("%s\n" % os.environ.get("GREETING")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`

func main() {
	bin := flag.String("piku", "./bin/piku", "the piku binary")
	runs := flag.Int("runs", 5, "runs of each measure")
	port := flag.Int("port", 41000, "the proxy's HTTP port; apps get the 100 ports above it, the pinned app the 150th")
	only := flag.String("only", "", "run only this measure (recreate, restarts: hup, term+start and kill+start); all by default")
	rate := flag.Int("rate", 150, "requests per second of the recreate measure's load")
	holdRequests := flag.Int("hold-requests", 0, "PIKU_HOLD_REQUESTS of the pinned app (0: unset, the default 256)")
	flag.Parse()
	if err := run(*bin, *runs, *port, *only, *rate, *holdRequests); err != nil {
		log.Fatal(err)
	}
}

// bench is one throwaway PIKU_ROOT with the app, and the daemon running on it.
type bench struct {
	bin, root, url string
	env            []string
	daemon         *exec.Cmd
	exited         chan error
}

func run(bin string, runs, port int, only string, rate, holdRequests int) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "piku-bench-restart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b := &bench{bin: bin, root: filepath.Join(tmp, "root"), url: "http://127.0.0.1:" + strconv.Itoa(port)}
	b.env = append(os.Environ(), "PIKU_ROOT="+b.root, "PIKU_HTTP=127.0.0.1:"+strconv.Itoa(port), "PIKU_HTTPS=",
		"PIKU_ACME=false", fmt.Sprintf("PIKU_PORTS=%d-%d", port+1, port+100))
	app := filepath.Join(b.root, "apps", "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		return err
	}
	pinned := filepath.Join(b.root, "apps", "pinned")
	if err := os.MkdirAll(pinned, 0o755); err != nil {
		return err
	}
	node := filepath.Join(b.root, "apps", "node")
	slow := filepath.Join(b.root, "apps", "slow")
	for _, dir := range []string{node, slow} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	for path, text := range map[string]string{
		filepath.Join(node, "Procfile"):    "web: node server.js\n",
		filepath.Join(node, "ENV"):         "NGINX_SERVER_NAME=node.test\n",
		filepath.Join(node, "server.js"):   nodeServer,
		filepath.Join(slow, "Procfile"):    "web: python3 slow.py\n",
		filepath.Join(slow, "ENV"):         "NGINX_SERVER_NAME=slow.test\nGREETING=slow\n",
		filepath.Join(slow, "slow.py"):     slowServer,
		filepath.Join(slow, "server.py"):   server,
		filepath.Join(app, "Procfile"):     "web: python3 server.py\n",
		filepath.Join(app, "ENV"):          "NGINX_SERVER_NAME=app.test\nGREETING=v0\n",
		filepath.Join(app, "server.py"):    server,
		filepath.Join(pinned, "Procfile"):  "web: python3 server.py\n",
		filepath.Join(pinned, "ENV"):       pinnedEnv(port+150, holdRequests),
		filepath.Join(pinned, "server.py"): server,
	} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
	}
	if err := b.start(); err != nil {
		return err
	}
	defer b.signal(syscall.SIGTERM)

	switch only {
	case "recreate":
		return b.recreates(runs, rate)
	case "restarts":
		return b.restarts(runs)
	case "":
	default:
		return fmt.Errorf("-only %q: the measures that run alone are recreate and restarts", only)
	}

	var push []time.Duration
	for i := range runs {
		d, err := b.ssePush(i)
		if err != nil {
			return err
		}
		push = append(push, d)
	}
	fmt.Printf("sse-push: config:set with an event stream open: median %v of %v\n", median(push), push)

	var exits []time.Duration
	var statuses []string
	for range runs {
		status, d, err := b.termInFlight()
		if err != nil {
			return err
		}
		statuses, exits = append(statuses, status), append(exits, d)
		if err := b.start(); err != nil {
			return err
		}
	}
	fmt.Printf("term-inflight: request in flight answered %v; daemon exit after SIGTERM: median %v of %v\n", statuses, median(exits), exits)

	if err := b.restarts(runs); err != nil {
		return err
	}
	return b.recreates(runs, rate)
}

// recreates runs the recreate measure runs times and prints it.
func (b *bench) recreates(runs, rate int) error {
	deadline := time.Now().Add(60 * time.Second)
	for !b.answers("pinned.test") {
		if time.Now().After(deadline) {
			return errors.New("the pinned app did not answer within 60 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var (
		failed           []int
		sent             []int
		longest, p99, ro []time.Duration
	)
	for range runs {
		r, err := b.recreate(rate)
		if err != nil {
			return err
		}
		failed, sent = append(failed, r.failed), append(sent, r.sent)
		if r.failed > 0 {
			fmt.Printf("recreate: failed requests by status: %v\n", r.fails)
		}
		longest, p99, ro = append(longest, r.longest), append(p99, r.p99), append(ro, r.rollout)
	}
	fmt.Printf("recreate at %d req/s: requests sent %v; failed %v; longest request (hold) median %v of %v; p99 median %v of %v; rollout median %v of %v\n",
		rate, sent, failed, median(longest), longest, median(p99), p99, median(ro), ro)
	return nil
}

// recreateRun is what one recreate rollout under load saw.
type recreateRun struct {
	sent, failed int
	fails        map[string]int // the failed requests by status, or "error"
	longest, p99 time.Duration
	rollout      time.Duration // how long `piku restart` took
}

// recreate sends rate requests per second to the pinned app, each on
// time in a goroutine of its own, for a second before `piku restart
// pinned`, during it and a second after.
func (b *bench) recreate(rate int) (recreateRun, error) {
	var (
		mu     sync.Mutex
		lat    []time.Duration
		failed int
		fails  = map[string]int{} // by status, or "error"
	)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodGet, b.url+"/", nil)
				req.Host = "pinned.test"
				t0 := time.Now()
				resp, err := c.Do(req)
				how := "error"
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					how = strconv.Itoa(resp.StatusCode)
				}
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				if how != "200" {
					failed++
					fails[how]++
				}
				mu.Unlock()
			})
		}
	})
	time.Sleep(time.Second)
	cmd := exec.Command(b.bin, "restart", "pinned")
	cmd.Env = b.env
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	rollout := time.Since(t0)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if err != nil {
		return recreateRun{}, fmt.Errorf("piku restart pinned: %v: %s", err, out)
	}
	if !bytes.Contains(out, []byte("recreate")) {
		return recreateRun{}, fmt.Errorf("piku restart pinned did not replace the app stop-then-start: %s", out)
	}
	slices.Sort(lat)
	r := recreateRun{sent: len(lat), failed: failed, fails: fails, rollout: rollout.Round(time.Millisecond)}
	if len(lat) > 0 {
		r.longest = lat[len(lat)-1].Round(time.Millisecond)
		r.p99 = lat[len(lat)*99/100].Round(time.Millisecond)
	}
	return r, nil
}

// pinnedEnv is the ENV of the app that pins PORT and is replaced
// stop-then-start.
func pinnedEnv(port, holdRequests int) string {
	env := fmt.Sprintf("NGINX_SERVER_NAME=pinned.test\nGREETING=v0\nPORT=%d\nPIKU_ROLLOUT=recreate\n", port)
	if holdRequests > 0 {
		env += fmt.Sprintf("PIKU_HOLD_REQUESTS=%d\n", holdRequests)
	}
	return env
}

// start starts a daemon and waits until the app answers through it.
func (b *bench) start() error {
	cmd := exec.Command(b.bin, "daemon")
	cmd.Env = b.env
	if err := cmd.Start(); err != nil {
		return err
	}
	b.daemon, b.exited = cmd, make(chan error, 1)
	go func() { b.exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if ok, _ := b.get("/"); ok {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("the app did not answer within 60 s of the daemon's start")
}

func (b *bench) signal(sig syscall.Signal) { _ = b.daemon.Process.Signal(sig) }

var client = &http.Client{Timeout: 10 * time.Second}

// get sends one GET with the app's Host and reports whether it got a 200.
func (b *bench) get(path string) (bool, int) {
	req, _ := http.NewRequest(http.MethodGet, b.url+path, nil)
	req.Host = "app.test"
	resp, err := client.Do(req)
	if err != nil {
		return false, 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK, resp.StatusCode
}

// answers reports whether the app of host answers / with a 200.
func (b *bench) answers(host string) bool {
	req, _ := http.NewRequest(http.MethodGet, b.url+"/", nil)
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// ssePush times a config:set while one event stream is open.
func (b *bench) ssePush(i int) (time.Duration, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.url+"/events", nil)
	req.Host = "app.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		return 0, fmt.Errorf("event stream: %w", err)
	}
	cmd := exec.Command(b.bin, "config:set", "app", "GREETING=v"+strconv.Itoa(i+1))
	cmd.Env = b.env
	t0 := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("config:set: %v: %s", err, out)
	}
	return time.Since(t0), nil
}

// termInFlight sends SIGTERM while a 3 s request is in flight and returns
// that request's status and how long the daemon took to exit.
func (b *bench) termInFlight() (string, time.Duration, error) {
	res := make(chan int, 1)
	go func() { _, code := b.get("/slow"); res <- code }()
	time.Sleep(500 * time.Millisecond) // the request has reached the app
	t0 := time.Now()
	b.signal(syscall.SIGTERM)
	<-b.exited
	d := time.Since(t0)
	code := <-res
	if code == 0 {
		return "cut", d, nil
	}
	return strconv.Itoa(code), d, nil
}

// loadHosts are the apps the restart measures load.
var loadHosts = []string{"app.test", "node.test", "slow.test"}

// restarts runs hup, term+start and kill+start runs times each and prints
// them, per app.
func (b *bench) restarts(runs int) error {
	for _, host := range loadHosts {
		if err := b.await(host); err != nil {
			return err
		}
	}
	for _, sc := range []struct {
		name string
		sig  syscall.Signal
	}{{"hup", syscall.SIGHUP}, {"term+start", syscall.SIGTERM}, {"kill+start", syscall.SIGKILL}} {
		failed := map[string][]int{}
		gaps := map[string][]time.Duration{}
		pids := 0
		for range runs {
			res, kept, err := b.underLoad(sc.sig)
			if err != nil {
				return err
			}
			for host, r := range res {
				failed[host] = append(failed[host], r.failed)
				gaps[host] = append(gaps[host], r.gap)
			}
			if kept {
				pids++
			}
		}
		for _, host := range loadHosts {
			f := slices.Sorted(slices.Values(failed[host]))
			fmt.Printf("%s %s: failed requests median %d of %v; longest gap median %v of %v\n",
				sc.name, host, f[len(f)/2], f, median(gaps[host]), gaps[host])
		}
		fmt.Printf("%s: app pids kept in %d of %d runs\n", sc.name, pids, runs)
	}
	return nil
}

// await waits until the app of host answers, for at most 60 s.
func (b *bench) await(host string) error {
	deadline := time.Now().Add(60 * time.Second)
	for !b.answers(host) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within 60 s", host)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// loadResult is what one app's load saw in one run.
type loadResult struct {
	failed int
	gap    time.Duration // the longest time between two answered requests
}

// underLoad runs a steady load on each app, sends sig (and starts a new
// daemon unless sig is SIGHUP), waits until every app answers again and a
// second more, and returns what each load saw, and whether every app's
// web process is the one it was before.
func (b *bench) underLoad(sig syscall.Signal) (map[string]loadResult, bool, error) {
	var mu sync.Mutex
	res := map[string]loadResult{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	for _, host := range loadHosts {
		wg.Go(func() {
			last := time.Now()
			for {
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				req, _ := http.NewRequest(http.MethodGet, b.url+"/", nil)
				req.Host = host
				ok := false
				if resp, err := c.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					ok = resp.StatusCode == http.StatusOK
				}
				now := time.Now()
				mu.Lock()
				r := res[host]
				if ok {
					r.gap = max(r.gap, now.Sub(last))
					last = now
				} else {
					r.failed++
				}
				res[host] = r
				mu.Unlock()
			}
		})
	}
	before := b.pids()
	time.Sleep(time.Second)
	b.signal(sig)
	if sig == syscall.SIGHUP {
		// The same process restarts in place; should it die instead,
		// start another, as a service manager would.
		select {
		case <-b.exited:
			if err := b.start(); err != nil {
				return nil, false, err
			}
		case <-time.After(3 * time.Second):
		}
	} else {
		<-b.exited
		if err := b.start(); err != nil {
			return nil, false, err
		}
	}
	for _, host := range loadHosts {
		if err := b.await(host); err != nil {
			return nil, false, err
		}
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	return res, slices.Equal(before, b.pids()), nil
}

// pids returns the pids of the apps' web processes, from run/processes.json.
func (b *bench) pids() []int {
	data, err := os.ReadFile(filepath.Join(b.root, "run", "processes.json"))
	if err != nil {
		return nil
	}
	var list []struct {
		PID int `json:"pid"`
	}
	if json.Unmarshal(data, &list) != nil {
		return nil
	}
	var out []int
	for _, p := range list {
		out = append(out, p.PID)
	}
	slices.Sort(out)
	return out
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}
