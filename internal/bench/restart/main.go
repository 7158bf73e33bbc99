// Command restart measures what the daemon's own signals cost the apps
// behind it, through the real binary and a real Python app, and reports
// the numbers docs/PERFORMANCE.md quotes (median of -runs):
//
//   - sse-push: how long `piku config:set` takes with one event-stream
//     client open on the old instance (default drain bound, 30 s);
//   - term-inflight: the status a 3 s request in flight gets when the
//     daemon receives SIGTERM, and how long the daemon takes to exit;
//   - hup, term+start, kill+start: under a steady load (one client, about
//     100 requests per second), the failed requests and the longest gap
//     between two answered ones, for SIGHUP, and for SIGTERM or SIGKILL
//     followed at once by a new daemon.
//
// Usage: go run ./internal/bench/restart -piku ./bin/piku [-runs 5] [-port 41000]
package main

import (
	"bufio"
	"context"
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
	port := flag.Int("port", 41000, "the proxy's HTTP port; apps get the 100 ports above it")
	flag.Parse()
	if err := run(*bin, *runs, *port); err != nil {
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

func run(bin string, runs, port int) error {
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
	for name, text := range map[string]string{
		"Procfile":  "web: python3 server.py\n",
		"ENV":       "NGINX_SERVER_NAME=app.test\nGREETING=v0\n",
		"server.py": server,
	} {
		if err := os.WriteFile(filepath.Join(app, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	if err := b.start(); err != nil {
		return err
	}
	defer b.signal(syscall.SIGTERM)

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

	for _, sc := range []struct {
		name string
		sig  syscall.Signal
	}{{"hup", syscall.SIGHUP}, {"term+start", syscall.SIGTERM}, {"kill+start", syscall.SIGKILL}} {
		var failed []int
		var gaps []time.Duration
		for range runs {
			f, gap, err := b.underLoad(sc.sig)
			if err != nil {
				return err
			}
			failed, gaps = append(failed, f), append(gaps, gap)
		}
		slices.Sort(failed)
		fmt.Printf("%s: failed requests median %d of %v; longest gap median %v of %v\n", sc.name, failed[len(failed)/2], failed, median(gaps), gaps)
	}
	return nil
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

// underLoad runs a steady load, sends sig (and starts a new daemon unless
// sig is SIGHUP and the daemon survived), and returns the failed requests
// and the longest gap between two answered ones.
func (b *bench) underLoad(sig syscall.Signal) (int, time.Duration, error) {
	var (
		mu     sync.Mutex
		failed int
		last   = time.Now()
		gap    time.Duration
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			ok, _ := b.get("/")
			now := time.Now()
			mu.Lock()
			if ok {
				gap = max(gap, now.Sub(last))
				last = now
			} else {
				failed++
			}
			mu.Unlock()
		}
	})
	time.Sleep(time.Second)
	b.signal(sig)
	if sig == syscall.SIGHUP {
		time.Sleep(2 * time.Second)
		select {
		case <-b.exited:
			// The daemon died of it: start another, as a service manager would.
			if err := b.start(); err != nil {
				return 0, 0, err
			}
		default:
		}
	} else {
		<-b.exited
		if err := b.start(); err != nil {
			return 0, 0, err
		}
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	return failed, gap, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}
