package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/piku/piku/internal/bench/machine"
	"github.com/piku/piku/internal/procgroup"
)

// daemonRun loads the real `piku daemon`, with an app deployed in a
// temporary PIKU_ROOT (this program with -serve-backend, on one fixed
// port), with wrk (HTTP/1.1) and h2load (HTTP/2 over TLS), beside nginx
// (access log buffered, buffer=64k flush=1s, as piku's is) and Caddy (no
// access log: it writes none unless configured) in front of the same app
// process. It prints req/s, latency and the CPU time per request of each
// proxy's processes.
//
//	go build -o bin/piku ./cmd/piku
//	go run ./internal/bench/proxyload -real-daemon ./bin/piku -duration 10s
func daemonRun(pikuBin string, d time.Duration, conns int, nginxBin, caddyBin string, responses []string, h2Too bool) error {
	for _, tool := range []string{"wrk", "h2load"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is needed (apt-get install wrk nghttp2-client): %w", tool, err)
		}
	}
	pikuBin, err := filepath.Abs(pikuBin)
	if err != nil {
		return err
	}
	root, err := os.MkdirTemp("", "proxyload-daemon")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	app := filepath.Join(root, "apps", "bench")
	if err := os.MkdirAll(app, 0o755); err != nil {
		return err
	}
	// The app is this program, copied into the app's folder (an app may
	// run only what its folders hold, where Landlock confines it).
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(app, "backend"), self, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(app, "Procfile"), []byte("web: ./backend -serve-backend 127.0.0.1:$PORT\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(app, "ENV"), []byte("NGINX_SERVER_NAME=app.test\n"), 0o644); err != nil {
		return err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return err
	}
	httpsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	appAddr, err := freeAddr()
	if err != nil {
		return err
	}
	cmd := exec.Command(pikuBin, "daemon", "--http", httpAddr, "--https", httpsAddr, "--acme=false",
		"--ports", portOf(appAddr)+"-"+portOf(appAddr), "--log-level", "warn")
	cmd.Env = append(os.Environ(), "PIKU_ROOT="+root, "HOME="+root)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	if err := waitAnswer("http://"+httpAddr+"/small", "app.test"); err != nil {
		return fmt.Errorf("piku daemon: %w", err)
	}
	// The HTTPS listener has its self-signed certificate for app.test
	// once the route is in.
	targets := []daemonTarget{{"piku daemon", httpAddr, httpsAddr, func() []int { return []int{cmd.Process.Pid} }}}

	dir, err := os.MkdirTemp("", "proxyload-tls")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	certFile, keyFile, err := selfSigned(dir)
	if err != nil {
		return err
	}
	if nginxBin == "" {
		nginxBin, _ = exec.LookPath("nginx")
		if nginxBin == "" {
			nginxBin = "/usr/sbin/nginx"
		}
	}
	if nginxBin != "none" {
		addr, tlsAddr, pid, stop, err := startNginx(nginxBin, appAddr, conns, certFile, keyFile, filepath.Join(dir, "nginx-access.log"))
		if err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
		defer stop()
		targets = append(targets, daemonTarget{"nginx", addr, tlsAddr, func() []int { return withChildren(pid) }})
	}
	if caddyBin == "" {
		caddyBin, _ = exec.LookPath("caddy")
	}
	if caddyBin != "" && caddyBin != "none" {
		addr, tlsAddr, pid, stop, err := startCaddy(caddyBin, appAddr, certFile, keyFile)
		if err != nil {
			return fmt.Errorf("caddy: %w", err)
		}
		defer stop()
		targets = append(targets, daemonTarget{"Caddy", addr, tlsAddr, func() []int { return withChildren(pid) }})
	}

	fmt.Printf("%d connections, %s a row (1 s of warm-up first), wrk -t2 (HTTP/1.1), h2load -t2 -m1 (HTTP/2 over TLS), %d CPUs, load average %s\n\n",
		conns, d, runtime.NumCPU(), machine.LoadAverage())
	fmt.Println("| target | protocol | response | req/s | p50 | p99 | CPU per request | errors |")
	fmt.Println("|---|---|---|---:|---:|---:|---:|---:|")
	for _, resp := range allResponses() {
		if !slices.Contains(responses, resp.label) {
			continue
		}
		for _, h2 := range []bool{false, true} {
			if h2 && (resp.gzip || !h2Too) {
				continue // compression is measured over HTTP/1.1
			}
			for _, t := range targets {
				row, err := t.load(resp, h2, conns, d)
				if err != nil {
					fmt.Fprintf(os.Stderr, "%s %s: %v\n", t.name, resp.label, err)
					continue
				}
				fmt.Println(row)
			}
		}
	}
	return nil
}

// daemonTarget is a proxy in processes of its own.
type daemonTarget struct {
	name, addr, tlsAddr string
	pids                func() []int
}

// load runs one row against t and returns it as a table row.
func (t daemonTarget) load(resp response, h2 bool, conns int, d time.Duration) (string, error) {
	var args []string
	tool, proto := "wrk", "HTTP/1.1"
	if h2 {
		tool, proto = "h2load", "HTTP/2"
		// SNI and :authority app.test, as a browser would send them.
		args = []string{"-t2", "-m1", "-c" + strconv.Itoa(conns), "--connect-to", t.tlsAddr}
		if resp.gzip {
			args = append(args, "-H", "accept-encoding: gzip")
		}
		args = append(args, "https://app.test:"+portOf(t.tlsAddr)+resp.path)
	} else {
		args = []string{"-t2", "-c" + strconv.Itoa(conns), "--latency", "--timeout", "10s", "-H", "Host: app.test"}
		if resp.gzip {
			args = append(args, "-H", "Accept-Encoding: gzip")
		}
		args = append(args, "http://"+t.addr+resp.path)
	}
	run := func(dur time.Duration) ([]byte, error) {
		a := slices.Clone(args)
		if h2 {
			a = append([]string{"-D", strconv.Itoa(max(1, int(dur.Seconds())))}, a...)
		} else {
			a = append([]string{"-d", dur.String()}, a...)
		}
		out, err := exec.Command(tool, a...).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w\n%s", tool, strings.Join(a, " "), err, out)
		}
		return out, nil
	}
	if _, err := run(time.Second); err != nil {
		return "", err
	}
	cpu0 := cpuOf(t.pids())
	out, err := run(d)
	if err != nil {
		return "", err
	}
	cpu := cpuOf(t.pids()) - cpu0
	var rps, n, errs float64
	var p50, p99 string
	if h2 {
		rps = floatAfter(out, `finished in [^,]+, ([\d.]+) req/s`)
		n = floatAfter(out, `requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded`)
		errs = floatAfter(out, `(\d+) failed`) + floatAfter(out, `(\d+) errored`)
		// h2load has no percentiles: its mean and its max.
		p50 = "mean " + strAfter(out, `time for request:\s+\S+\s+\S+\s+(\S+)`)
		p99 = "max " + strAfter(out, `time for request:\s+\S+\s+(\S+)`)
	} else {
		rps = floatAfter(out, `Requests/sec:\s+([\d.]+)`)
		n = floatAfter(out, `(\d+) requests in`)
		p50 = strAfter(out, `\s50%\s+(\S+)`)
		p99 = strAfter(out, `\s99%\s+(\S+)`)
		errs = floatAfter(out, `Non-2xx or 3xx responses: (\d+)`) + floatAfter(out, `Socket errors: connect (\d+)`) +
			floatAfter(out, `Socket errors: .*read (\d+)`) + floatAfter(out, `Socket errors: .*write (\d+)`) +
			floatAfter(out, `Socket errors: .*timeout (\d+)`)
	}
	cpuPerReq := "-"
	if n > 0 {
		cpuPerReq = fmt.Sprintf("%.1f µs", cpu/n*1e6)
	}
	return fmt.Sprintf("| %s | %s | %s | %.0f | %s | %s | %s | %.0f |", t.name, proto, resp.label, rps, p50, p99, cpuPerReq, errs), nil
}

func cpuOf(pids []int) float64 {
	var sum float64
	for _, pid := range pids {
		sum += procgroup.CPU(pid)
	}
	return sum
}

func floatAfter(out []byte, re string) float64 {
	m := regexp.MustCompile(re).FindSubmatch(out)
	if m == nil {
		return 0
	}
	f, _ := strconv.ParseFloat(string(m[1]), 64)
	return f
}

func strAfter(out []byte, re string) string {
	m := regexp.MustCompile(re).FindSubmatch(out)
	if m == nil {
		return "?"
	}
	return string(m[1])
}

// waitAnswer waits until GET url with Host host answers 200.
func waitAnswer(url, host string) error {
	var last error
	for range 200 {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", res.StatusCode)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no answer from %s: %w", url, last)
}
