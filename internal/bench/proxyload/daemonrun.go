package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
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
// pikuBins may name several piku binaries (comma-separated, to compare
// an old build with a new one): each runs a daemon of its own with its
// own app process, and nginx and Caddy front the first one's. With
// rounds above 1 every row of every target is run that many times,
// interleaved (each round starting one target later), and the medians
// follow. Targets whose name has none of
// the parts in only are skipped (all run when only is empty); "piku
// proxy, own process" (the proxy package alone, as -targets 'own
// process' runs it, in front of the first daemon's app) is run only
// when only names it. With profile set, the first daemon's CPU profile
// over its first HTTP/1.1 row is written there (taken over the control
// socket, GET /debug/pprof/profile).
//
//	go build -o bin/piku ./cmd/piku
//	go run ./internal/bench/proxyload -real-daemon ./bin/piku -duration 10s
func daemonRun(pikuBins []string, d time.Duration, conns, rounds int, only []string, nginxBin, caddyBin string, responses []string, h2Too bool, profile string) error {
	for _, tool := range []string{"wrk", "h2load"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is needed (apt-get install wrk nghttp2-client): %w", tool, err)
		}
	}
	wanted := func(name string) bool {
		if len(only) == 0 {
			return true
		}
		for _, o := range only {
			if o != "" && strings.Contains(name, o) {
				return true
			}
		}
		return false
	}
	var targets []daemonTarget
	var firstApp, firstSocket string
	for i, bin := range pikuBins {
		name := "piku daemon"
		if len(pikuBins) > 1 {
			name = fmt.Sprintf("piku daemon %d (%s)", i+1, filepath.Base(bin))
		}
		t, appAddr, socket, stop, err := startDaemon(bin, name)
		if err != nil {
			return err
		}
		defer stop()
		if i == 0 {
			firstApp, firstSocket = appAddr, socket
		}
		if wanted(name) {
			targets = append(targets, t)
		}
	}

	dir, err := os.MkdirTemp("", "proxyload-tls")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	certFile, keyFile, err := selfSigned(dir)
	if err != nil {
		return err
	}
	if own := "piku proxy, own process"; len(only) > 0 && wanted(own) {
		addr, tlsAddr, pid, stop, err := startOwn(firstApp, certFile, keyFile, filepath.Join(dir, "own-access.log"), false)
		if err != nil {
			return fmt.Errorf("piku proxy: %w", err)
		}
		defer stop()
		targets = append(targets, daemonTarget{own, addr, tlsAddr, func() []int { return []int{pid} }})
	}
	if nginxBin == "" {
		nginxBin, _ = exec.LookPath("nginx")
		if nginxBin == "" {
			nginxBin = "/usr/sbin/nginx"
		}
	}
	if nginxBin != "none" && wanted("nginx") {
		addr, tlsAddr, pid, stop, err := startNginx(nginxBin, firstApp, conns, certFile, keyFile, filepath.Join(dir, "nginx-access.log"))
		if err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
		defer stop()
		targets = append(targets, daemonTarget{"nginx", addr, tlsAddr, func() []int { return withChildren(pid) }})
	}
	if caddyBin == "" {
		caddyBin, _ = exec.LookPath("caddy")
	}
	if caddyBin != "" && caddyBin != "none" && wanted("Caddy") {
		addr, tlsAddr, pid, stop, err := startCaddy(caddyBin, firstApp, certFile, keyFile)
		if err != nil {
			return fmt.Errorf("caddy: %w", err)
		}
		defer stop()
		targets = append(targets, daemonTarget{"Caddy", addr, tlsAddr, func() []int { return withChildren(pid) }})
	}

	fmt.Printf("%d connections, %s a row (1 s of warm-up first), %d round(s), wrk -t2 (HTTP/1.1), h2load -t2 -m1 (HTTP/2 over TLS), %d CPUs, load average %s\n\n",
		conns, d, rounds, runtime.NumCPU(), machine.LoadAverage())
	fmt.Println("| target | protocol | response | req/s | p50 | p99 | CPU per request | machine's CPU per request | errors |")
	fmt.Println("|---|---|---|---:|---:|---:|---:|---:|---:|")
	type rowKey struct{ target, proto, resp string }
	var order []rowKey
	cpus := map[rowKey][]float64{}
	machines := map[rowKey][]float64{}
	for round := range max(rounds, 1) {
		for _, resp := range allResponses() {
			if !slices.Contains(responses, resp.label) {
				continue
			}
			for _, h2 := range []bool{false, true} {
				if h2 && (resp.gzip || !h2Too) {
					continue // compression is measured over HTTP/1.1
				}
				// Each round starts one target later: the target that
				// runs right after another measured a few per cent more
				// than its place alone explains, whichever it was.
				for j := range targets {
					i := (j + round) % len(targets)
					t := targets[i]
					var prof func() error
					if profile != "" && round == 0 && i == 0 && !h2 && firstSocket != "" {
						prof = takeProfile(firstSocket, d, profile)
						profile = ""
					}
					row, err := t.load(resp, h2, conns, d, prof)
					if err != nil {
						fmt.Fprintf(os.Stderr, "%s %s: %v\n", t.name, resp.label, err)
						continue
					}
					fmt.Println(row.line)
					k := rowKey{t.name, row.proto, resp.label}
					if _, ok := cpus[k]; !ok {
						order = append(order, k)
					}
					cpus[k] = append(cpus[k], row.cpuPerReq)
					machines[k] = append(machines[k], row.machinePerReq)
				}
			}
		}
	}
	if rounds > 1 {
		// The machine's speed moves between rounds (other work on the
		// same cores): the ratio to nginx's row of the same round moves
		// less than either figure.
		median := func(v []float64) float64 {
			s := slices.Clone(v)
			slices.Sort(s)
			if len(s)%2 == 0 {
				return (s[len(s)/2-1] + s[len(s)/2]) / 2
			}
			return s[len(s)/2]
		}
		fmt.Printf("\nmedians of %d rounds, load average %s\n\n", rounds, machine.LoadAverage())
		// The machine's CPU (every process's and the kernel's work done
		// outside any process, such as TCP pacing timers) is the fairer
		// comparison of proxies that leave different shares of their
		// network work to the kernel's own contexts.
		fmt.Println("| target | protocol | response | CPU per request (median) | rounds | / nginx's of the round (median) | rounds | machine's CPU per request (median) | / nginx's (median) |")
		fmt.Println("|---|---|---|---:|---|---:|---|---:|---:|")
		ratioToNginx := func(k rowKey, of map[rowKey][]float64) (string, []string) {
			v, n := of[k], of[rowKey{"nginx", k.proto, k.resp}]
			if len(n) != len(v) || k.target == "nginx" {
				return "-", []string{"-"}
			}
			r := make([]float64, len(v))
			rs := make([]string, len(v))
			for i := range v {
				r[i] = v[i] / n[i]
				rs[i] = fmt.Sprintf("%.2f", r[i])
			}
			return fmt.Sprintf("%.2fx", median(r)), rs
		}
		for _, k := range order {
			v := cpus[k]
			all := make([]string, len(v))
			for i, x := range v {
				all[i] = fmt.Sprintf("%.1f", x)
			}
			ratio, ratios := ratioToNginx(k, cpus)
			mratio, _ := ratioToNginx(k, machines)
			fmt.Printf("| %s | %s | %s | %.1f µs | %s | %s | %s | %.1f µs | %s |\n", k.target, k.proto, k.resp, median(v), strings.Join(all, ", "),
				ratio, strings.Join(ratios, ", "), median(machines[k]), mratio)
		}
	}
	return nil
}

// startDaemon starts `bin daemon` on a temporary PIKU_ROOT with the
// benchmark's app deployed (this program with -serve-backend) on a port
// of its own. It returns the target, the app's address, the control
// socket and a function that stops the daemon and removes its root.
func startDaemon(bin, name string) (t daemonTarget, appAddr, socket string, stop func(), err error) {
	bin, err = filepath.Abs(bin)
	if err != nil {
		return t, "", "", nil, err
	}
	root, err := os.MkdirTemp("", "proxyload-daemon")
	if err != nil {
		return t, "", "", nil, err
	}
	fail := func(err error) (daemonTarget, string, string, func(), error) {
		os.RemoveAll(root)
		return t, "", "", nil, err
	}
	app := filepath.Join(root, "apps", "bench")
	if err := os.MkdirAll(app, 0o755); err != nil {
		return fail(err)
	}
	// The app is this program, copied into the app's folder (an app may
	// run only what its folders hold, where Landlock confines it).
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(app, "backend"), self, 0o755); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(app, "Procfile"), []byte("web: ./backend -serve-backend 127.0.0.1:$PORT\n"), 0o644); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(app, "ENV"), []byte("NGINX_SERVER_NAME=app.test\n"), 0o644); err != nil {
		return fail(err)
	}
	var addrs [3]string
	for i := range addrs {
		if addrs[i], err = freeAddr(); err != nil {
			return fail(err)
		}
	}
	httpAddr, httpsAddr, appAddr := addrs[0], addrs[1], addrs[2]
	cmd := exec.Command(bin, "daemon", "--http", httpAddr, "--https", httpsAddr, "--acme=false",
		"--ports", portOf(appAddr)+"-"+portOf(appAddr), "--log-level", "warn")
	cmd.Env = append(os.Environ(), "PIKU_ROOT="+root, "HOME="+root)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		os.RemoveAll(root)
	}
	if err := waitAnswer("http://"+httpAddr+"/small", "app.test"); err != nil {
		stop()
		return t, "", "", nil, fmt.Errorf("%s: %w", name, err)
	}
	// The HTTPS listener has its self-signed certificate for app.test
	// once the route is in.
	t = daemonTarget{name, httpAddr, httpsAddr, func() []int { return []int{cmd.Process.Pid} }}
	return t, appAddr, filepath.Join(root, "run", "piku.sock"), stop, nil
}

// takeProfile returns a function that asks the daemon listening on the
// control socket for a CPU profile of d and writes it to file; it is
// started with a row's measured load.
func takeProfile(socket string, d time.Duration, file string) func() error {
	return func() error {
		client := &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", socket)
			},
		}}
		res, err := client.Get(fmt.Sprintf("http://piku/debug/pprof/profile?seconds=%d", max(1, int(d.Seconds())-1)))
		if err != nil {
			return fmt.Errorf("daemon profile: %w", err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("daemon profile: %s", res.Status)
		}
		b, err := io.ReadAll(res.Body)
		if err != nil {
			return fmt.Errorf("daemon profile: %w", err)
		}
		return os.WriteFile(file, b, 0o644)
	}
}

// daemonTarget is a proxy in processes of its own.
type daemonTarget struct {
	name, addr, tlsAddr string
	pids                func() []int
}

// daemonRow is one measured row: its table line, its protocol, the CPU
// time per request of the target's processes in µs, and the machine's
// (every CPU's busy time: the load generator, the app and the kernel's
// work outside any process too).
type daemonRow struct {
	line, proto   string
	cpuPerReq     float64
	machinePerReq float64
}

// load runs one row against t and returns it. prof, when set, runs
// beside the measured load (a profile of the target).
func (t daemonTarget) load(resp response, h2 bool, conns int, d time.Duration, prof func() error) (daemonRow, error) {
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
		return daemonRow{}, err
	}
	profErr := make(chan error, 1)
	if prof != nil {
		go func() { profErr <- prof() }()
	} else {
		profErr <- nil
	}
	cpu0 := cpuOf(t.pids())
	sys0 := sysOf(t.pids())
	busy0 := machine.Busy()
	out, err := run(d)
	if err != nil {
		return daemonRow{}, err
	}
	cpu := cpuOf(t.pids()) - cpu0
	sys := sysOf(t.pids()) - sys0
	busy := machine.Busy() - busy0
	if err := <-profErr; err != nil {
		return daemonRow{}, err
	}
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
	row := daemonRow{proto: proto}
	cpuPerReq, machinePerReq := "-", "-"
	if n > 0 {
		row.cpuPerReq = cpu / n * 1e6
		row.machinePerReq = busy / n * 1e6
		cpuPerReq = fmt.Sprintf("%.1f µs (kernel %.1f)", row.cpuPerReq, sys/n*1e6)
		machinePerReq = fmt.Sprintf("%.1f µs", row.machinePerReq)
	}
	row.line = fmt.Sprintf("| %s | %s | %s | %.0f | %s | %s | %s | %s | %.0f |", t.name, proto, resp.label, rps, p50, p99, cpuPerReq, machinePerReq, errs)
	return row, nil
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

func sysOf(pids []int) float64 {
	var sum float64
	for _, pid := range pids {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		if len(f) < 15 {
			continue
		}
		n, _ := strconv.ParseInt(string(f[12]), 10, 64)
		sum += float64(n) / 100
	}
	return sum
}
