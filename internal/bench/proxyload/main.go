// Command proxyload measures requests per second and latency percentiles
// of a small and a 1 MiB response served by a backend directly, through
// piku's proxy, through a plain net/http/httputil.ReverseProxy (the naive
// NewSingleHostReverseProxy with the default transport, and the same with
// an idle pool as large as the number of connections) and, when nginx is
// installed, through nginx with a keepalive upstream and Caddy's
// reverse_proxy. It prints a markdown table, or with -json one JSON object
// per target and response.
//
//	go run ./internal/bench/proxyload -duration 10s -conns 64
//	go run ./internal/bench/proxyload -rounds 3 -targets piku,nginx,caddy -json
//
// For the targets that run in processes of their own (piku's proxy, nginx,
// Caddy) it also reports the proxy's CPU time per request: the user and
// system time of its processes (nginx: the master and its workers) read
// from /proc before and after the row, over the requests of the row,
// warm-up included. That figure depends least on the load generator
// sharing the CPUs. With -rounds N every row is run N times, interleaved
// (all targets, then all again), and the medians are shown.
//
// The load generator is closed-loop: each of -conns workers owns one
// keep-alive connection and sends its next request when the previous
// response has been read. Each row first runs for -warmup, unmeasured, on
// the same connections, then for -duration. Latencies are those of the
// requests sent during -duration; req/s counts them over the time until
// the last one finished. "client conns" is the number of connections the
// generator opened for the row, warm-up included: -conns means every one
// was kept alive throughout. "backend conns" is the number of connections
// the backend accepted meanwhile, which shows whether the proxy reuses its
// upstream connections (a proxy reusing connections from an earlier row
// shows 0).
//
// The generator, the backend, piku's proxy and the ReverseProxy share this
// process and its CPUs; nginx runs its own worker processes on the same
// CPUs. Other load on the machine shows in the load average printed above
// the table.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/piku/piku/internal/bench/machine"
	"github.com/piku/piku/internal/daemon"
	"github.com/piku/piku/internal/procgroup"
	"github.com/piku/piku/proxy"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "how long each row is measured")
	warmup := flag.Duration("warmup", time.Second, "unmeasured load before each row")
	conns := flag.Int("conns", 64, "concurrent keep-alive connections")
	nginxBin := flag.String("nginx", "", "nginx binary; default: nginx on PATH or /usr/sbin/nginx; \"none\" skips nginx")
	caddyBin := flag.String("caddy", "", "caddy binary; default: caddy on PATH; \"none\" skips Caddy")
	rounds := flag.Int("rounds", 1, "interleaved rounds of every row; the medians are shown")
	only := flag.String("targets", "", "comma-separated substrings: run only the targets whose name has one (\"piku,nginx\")")
	sizes := flag.String("responses", "13 B,1 MiB", "comma-separated responses to measure: 13 B, 1 MiB (chunked), 1 MiB with length, 10 KB text, 100 KB text (asked for with Accept-Encoding: gzip), and \"10 KB text uncompressed\", \"100 KB text uncompressed\"")
	asJSON := flag.Bool("json", false, "print one JSON object per target and response instead of a table")
	h2 := flag.Bool("h2", true, "also measure HTTP/2 over TLS to piku, nginx and Caddy (their own processes)")
	serveProxy := flag.String("serve-proxy", "", "internal: run only piku's proxy in front of this backend address, print its address")
	serveCert := flag.String("serve-cert", "", "internal: with -serve-proxy, also serve HTTPS with this certificate (and -serve-key), print that address too")
	serveKey := flag.String("serve-key", "", "internal: see -serve-cert")
	accessLog := flag.Bool("access-log", false, "piku and nginx write access logs, buffered (nginx: buffer=64k flush=1s), to a temporary directory")
	serveAccessLog := flag.String("serve-access-log", "", "internal: with -serve-proxy, write the access log to this file")
	serveNetHTTP := flag.Bool("serve-nethttp1", false, "internal: with -serve-proxy, serve plain HTTP with net/http's server (proxy.Options.NetHTTP1)")
	realDaemon := flag.String("real-daemon", "", "instead of the load above: the piku binary whose daemon, with a deployed app, is loaded with wrk and h2load beside nginx and Caddy; several, comma-separated, each run a daemon of their own (old and new builds interleaved)")
	daemonProfile := flag.String("daemon-cpuprofile", "", "with -real-daemon: write the first daemon's CPU profile over its first HTTP/1.1 row to this file")
	serveBackend := flag.String("serve-backend", "", "internal: serve the backend's answers on this address (the app of -real-daemon)")
	floodN := flag.Int("flood", 0, "instead of the load: this many hostile clients at once against piku's proxy and nginx (64 KiB of header fields, or 31 KiB held while a slow page answers); prints the peak RSS of each")
	floodSlow := flag.Duration("flood-slow", 2*time.Second, "with -flood, how long the page takes to answer")
	flag.Parse()
	log.SetFlags(0)
	if *serveBackend != "" {
		log.Fatal(http.ListenAndServe(*serveBackend, backendHandler()))
	}
	if *realDaemon != "" {
		var parts []string
		if *only != "" {
			parts = strings.Split(*only, ",")
		}
		if err := daemonRun(strings.Split(*realDaemon, ","), *duration, *conns, *rounds, parts, *nginxBin, *caddyBin, strings.Split(*sizes, ","), *h2, *daemonProfile); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *floodN > 0 {
		if err := floodRun(*floodN, *floodSlow, *nginxBin); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *serveProxy != "" {
		if err := proxyOnly(*serveProxy, *serveCert, *serveKey, *serveAccessLog, *serveNetHTTP); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *conns < 1 || *duration <= 0 || *warmup < 0 || *rounds < 1 {
		log.Fatal("proxyload: -conns, -duration and -rounds must be positive, -warmup not negative")
	}
	o := runOptions{duration: *duration, warmup: *warmup, conns: *conns, nginx: *nginxBin, caddy: *caddyBin,
		rounds: *rounds, json: *asJSON, responses: strings.Split(*sizes, ","), h2: *h2, accessLog: *accessLog}
	if *only != "" {
		o.only = strings.Split(*only, ",")
	}
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

// target is one thing the load goes to; pids, when set, lists the
// processes whose CPU time is the target's. h2 targets are spoken to in
// HTTP/2 over TLS (SNI app.test, the certificate not verified).
type target struct {
	name, addr string
	pids       func() []int
	h2         bool
}

// runOptions are the flags of a run.
type runOptions struct {
	duration, warmup time.Duration
	conns, rounds    int
	nginx, caddy     string
	only             []string // target name substrings; nil = all
	responses        []string // response labels to measure
	json             bool
	h2               bool // also HTTP/2 over TLS
	accessLog        bool // piku and nginx write access logs
}

type response struct {
	label, path string
	size        int
	gzip        bool // asked for with Accept-Encoding: gzip; must come compressed
}

func run(o runOptions) error {
	duration, warmup, conns, nginxBin := o.duration, o.warmup, o.conns, o.nginx
	responses := slices.DeleteFunc(allResponses(), func(r response) bool { return !slices.Contains(o.responses, r.label) })
	if len(responses) == 0 {
		return fmt.Errorf("-responses %q names none of: 13 B, 1 MiB, 10 KB text, 100 KB text, 10 KB text uncompressed, 100 KB text uncompressed", strings.Join(o.responses, ","))
	}
	backendConns := new(atomic.Int64)
	backend, err := serveCounting(backendConns, backendHandler())
	if err != nil {
		return err
	}
	backendURL := &url.URL{Scheme: "http", Host: backend}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pikuAddr, _, err := runProxy(ctx, backend)
	if err != nil {
		return err
	}

	// What a user might write first: the default transport keeps at most
	// two idle connections per backend, so most requests under
	// concurrency dial a new one.
	naive, err := serve(httputil.NewSingleHostReverseProxy(backendURL))
	if err != nil {
		return err
	}
	// The same with an idle pool that fits every connection.
	pooled := httputil.NewSingleHostReverseProxy(backendURL)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns
	pooled.Transport = tr
	pooledAddr, err := serve(pooled)
	if err != nil {
		return err
	}

	// piku's proxy in a process of its own, as in the daemon and as nginx
	// runs: it does not share a Go runtime with the load generator.
	var certFile, keyFile string
	if o.h2 {
		dir, err := os.MkdirTemp("", "proxyload-tls")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if certFile, keyFile, err = selfSigned(dir); err != nil {
			return err
		}
	}
	logDir := ""
	if o.accessLog {
		if logDir, err = os.MkdirTemp("", "proxyload-logs"); err != nil {
			return err
		}
		defer os.RemoveAll(logDir)
	}
	logFile := func(name string) string {
		if logDir == "" {
			return ""
		}
		return filepath.Join(logDir, name)
	}
	ownAddr, ownTLS, ownPid, stopOwn, err := startOwn(backend, certFile, keyFile, logFile("piku.log"), false)
	if err != nil {
		return err
	}
	defer stopOwn()
	// The same with net/http's server for plain HTTP, to compare the two.
	stdAddr, _, stdPid, stopStd, err := startOwn(backend, "", "", logFile("piku-nethttp.log"), true)
	if err != nil {
		return err
	}
	defer stopStd()

	targets := []target{
		{"backend direct", backend, nil, false},
		{"piku proxy (own process)", ownAddr, func() []int { return []int{ownPid} }, false},
		{"piku proxy (own process, net/http server)", stdAddr, func() []int { return []int{stdPid} }, false},
		{"piku proxy (in the load generator's process)", pikuAddr, nil, false},
		{"httputil.ReverseProxy (default transport)", naive, nil, false},
		{fmt.Sprintf("httputil.ReverseProxy (MaxIdleConnsPerHost %d)", conns), pooledAddr, nil, false},
	}
	if o.h2 {
		targets = append(targets, target{"piku proxy (own process), HTTP/2", ownTLS, func() []int { return []int{ownPid} }, true})
	}
	if nginxBin == "" {
		for _, c := range []string{"nginx", "/usr/sbin/nginx"} {
			if p, err := exec.LookPath(c); err == nil {
				nginxBin = p
				break
			}
		}
	}
	if nginxBin != "" && nginxBin != "none" {
		addr, tlsAddr, pid, stop, err := startNginx(nginxBin, backend, conns, certFile, keyFile, logFile("nginx.log"))
		targets = addServer(targets, "nginx (keepalive upstream)", addr, tlsAddr, pid, err)
		if err == nil {
			defer stop()
		}
	}
	caddyBin := o.caddy
	if caddyBin == "" {
		caddyBin, _ = exec.LookPath("caddy")
	}
	if caddyBin != "" && caddyBin != "none" {
		addr, tlsAddr, pid, stop, err := startCaddy(caddyBin, backend, certFile, keyFile)
		targets = addServer(targets, "Caddy (reverse_proxy)", addr, tlsAddr, pid, err)
		if err == nil {
			defer stop()
		}
	}
	if o.only != nil {
		targets = slices.DeleteFunc(targets, func(t target) bool {
			return !slices.ContainsFunc(o.only, func(s string) bool { return strings.Contains(strings.ToLower(t.name), strings.ToLower(s)) })
		})
	}

	type rowKey struct{ target, response string }
	rows := map[rowKey][]*result{}
	for range o.rounds {
		for _, resp := range responses {
			for _, t := range targets {
				runtime.GC()
				before := backendConns.Load()
				r := load(t, resp, conns, warmup, duration)
				r.backendConns = backendConns.Load() - before
				if r.firstErr != nil {
					log.Printf("%s %s: first error: %v", t.name, resp.path, r.firstErr)
				}
				k := rowKey{t.name, resp.label}
				rows[k] = append(rows[k], r)
			}
		}
	}
	if !o.json {
		fmt.Printf("%d keep-alive connections, %s warm-up + %s per row, %d round(s) (medians), %d CPUs, GOMAXPROCS=%d, load average %s\n\n",
			conns, warmup, duration, o.rounds, runtime.NumCPU(), runtime.GOMAXPROCS(0), machine.LoadAverage())
		fmt.Println("| target | response | req/s | p50 | p99 | p99.9 | proxy CPU per request | errors | client conns | backend conns |")
		fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	}
	enc := json.NewEncoder(os.Stdout)
	for _, resp := range responses {
		for _, t := range targets {
			m := medianResult(rows[rowKey{t.name, resp.label}])
			if o.json {
				out := map[string]any{"target": t.name, "response": resp.label, "rps": math.Round(m.rps),
					"p50_ms": ms(m.p50), "p99_ms": ms(m.p99), "errors": m.errors}
				if m.cpuPerReq > 0 {
					out["cpu_us_per_req"] = math.Round(m.cpuPerReq*10) / 10
				}
				if err := enc.Encode(out); err != nil {
					return err
				}
				continue
			}
			cpu := "-"
			if m.cpuPerReq > 0 {
				cpu = fmt.Sprintf("%.1f µs", m.cpuPerReq)
			}
			fmt.Printf("| %s | %s | %.0f | %s | %s | %s | %s | %d | %d | %d |\n",
				t.name, resp.label, m.rps, fmtDur(m.p50), fmtDur(m.p99), fmtDur(m.p999), cpu, m.errors, m.dials, m.backendConns)
		}
	}
	return nil
}

// The backend's answers.
var (
	smallBody         = []byte("hello, world\n")
	bigBody           = bytes.Repeat([]byte("x"), 1<<20)
	text10k, text100k = pageText(10_000), pageText(100_000)
)

// allResponses are the responses a run may measure.
func allResponses() []response {
	return []response{{"13 B", "/small", len(smallBody), false}, {"1 MiB", "/big", len(bigBody), false},
		{"1 MiB with length", "/big-length", len(bigBody), false},
		{"10 KB text", "/text10k", len(text10k), true}, {"100 KB text", "/text100k", len(text100k), true},
		{"10 KB text uncompressed", "/text10k", len(text10k), false}, {"100 KB text uncompressed", "/text100k", len(text100k), false}}
}

// backendHandler is the app behind every proxy: a 13-byte answer, 1 MiB
// chunked and with a Content-Length, and 10 KB and 100 KB of text with a
// Content-Length.
func backendHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Write(bigBody) // chunked: the handler writes more than net/http buffers
		case "/big-length":
			w.Header().Set("Content-Length", strconv.Itoa(len(bigBody)))
			w.Write(bigBody)
		case "/text10k", "/text100k":
			page := text10k
			if r.URL.Path == "/text100k" {
				page = text100k
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Content-Length", strconv.Itoa(len(page)))
			w.Write(page)
		default:
			w.Write(smallBody)
		}
	})
}

// addServer adds a proxy running as processes of its own (pid and its
// children) to targets: over HTTP/1.1 at addr and, when tlsAddr is set,
// over HTTP/2 there. A server that did not start (err) is reported and
// skipped.
func addServer(targets []target, name, addr, tlsAddr string, pid int, err error) []target {
	if err != nil {
		log.Printf("%s skipped: %v", name, err)
		return targets
	}
	pids := func() []int { return withChildren(pid) }
	targets = append(targets, target{name, addr, pids, false})
	if tlsAddr != "" {
		targets = append(targets, target{name + ", HTTP/2", tlsAddr, pids, true})
	}
	return targets
}

// medianResult is, field by field, the median of rs.
func medianResult(rs []*result) *result {
	med := func(f func(*result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	d := func(f func(*result) time.Duration) time.Duration {
		return time.Duration(med(func(r *result) float64 { return float64(f(r)) }))
	}
	return &result{
		rps:          med(func(r *result) float64 { return r.rps }),
		p50:          d(func(r *result) time.Duration { return r.p50 }),
		p99:          d(func(r *result) time.Duration { return r.p99 }),
		p999:         d(func(r *result) time.Duration { return r.p999 }),
		cpuPerReq:    med(func(r *result) float64 { return r.cpuPerReq }),
		errors:       int64(med(func(r *result) float64 { return float64(r.errors) })),
		dials:        int64(med(func(r *result) float64 { return float64(r.dials) })),
		backendConns: int64(med(func(r *result) float64 { return float64(r.backendConns) })),
	}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)) / 1000 }

// cpuSeconds is the CPU time the processes pids have used.
func cpuSeconds(pids []int) float64 {
	var sum float64
	for _, pid := range pids {
		sum += procgroup.CPU(pid)
	}
	return sum
}

// withChildren is pid and the processes whose parent it is (nginx's and
// Caddy's workers).
func withChildren(pid int) []int {
	out := []int{pid}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == fmt.Sprint(pid) {
			var child int
			fmt.Sscan(e.Name(), &child)
			out = append(out, child)
		}
	}
	return out
}

// startOwn runs piku's proxy in a process of its own (this program with
// -serve-proxy) in front of backend, with net/http's server for plain HTTP
// when netHTTP1 is set. It returns the HTTP and (with a certificate) HTTPS
// addresses, the process's pid and a function that stops it.
func startOwn(backend, certFile, keyFile, accessLog string, netHTTP1 bool) (addr, tlsAddr string, pid int, stop func(), err error) {
	cmd := exec.Command(os.Args[0], "-serve-proxy", backend, "-serve-cert", certFile, "-serve-key", keyFile,
		"-serve-access-log", accessLog, fmt.Sprintf("-serve-nethttp1=%v", netHTTP1))
	cmd.Stderr = os.Stderr
	if netHTTP1 {
		// PROXYLOAD_CPUPROFILE profiles the proxy as the daemon runs it.
		cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PROXYLOAD_CPUPROFILE=") })
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", "", 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", "", 0, nil, err
	}
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", "", 0, nil, fmt.Errorf("piku proxy process: %w", err)
	}
	addr, tlsAddr, _ = strings.Cut(strings.TrimSpace(line), " ")
	return addr, tlsAddr, cmd.Process.Pid, stop, nil
}

// proxyOnly serves piku's proxy in front of backend until SIGTERM, after
// printing its address on stdout.
func proxyOnly(backend, certFile, keyFile, accessLog string, netHTTP1 bool) error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(daemon.GCPercent) // as piku daemon runs it
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// PROXYLOAD_CPUPROFILE=FILE profiles piku's proxy process alone.
	if f := os.Getenv("PROXYLOAD_CPUPROFILE"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); out.Close() }()
	}
	var tlsConfig *tls.Config
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return err
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	addr, tlsAddr, done, err := runProxyTLS(ctx, backend, tlsConfig, accessLog, netHTTP1)
	if err != nil {
		return err
	}
	fmt.Println(addr, tlsAddr)
	return <-done
}

// runProxy serves piku's proxy for app.test in front of backend on a free
// loopback port until ctx ends. It returns the address once the proxy
// listens, and a channel that gets Run's result.
func runProxy(ctx context.Context, backend string) (string, <-chan error, error) {
	addr, _, done, err := runProxyTLS(ctx, backend, nil, "", false)
	return addr, done, err
}

// runProxyTLS is runProxy that also serves HTTPS (and so HTTP/2) when
// tlsConfig is set, and returns that address too.
func runProxyTLS(ctx context.Context, backend string, tlsConfig *tls.Config, accessLog string, netHTTP1 bool) (string, string, <-chan error, error) {
	o := proxy.Options{HTTPAddr: "127.0.0.1:0", NetHTTP1: netHTTP1}
	if tlsConfig != nil {
		o.HTTPSAddr, o.TLSConfig = "127.0.0.1:0", tlsConfig
	}
	p := proxy.New(o)
	p.SetRoute(proxy.Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{backend}, Compress: true, AccessLog: accessLog})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case err := <-done:
		return "", "", nil, err
	}
	addr, tlsAddr := p.Addrs()
	return addr, tlsAddr, done, nil
}

// serve serves h on a free loopback port and returns its address.
func serve(h http.Handler) (string, error) { return serveCounting(nil, h) }

// serveCounting is serve that adds each accepted connection to accepted,
// unless it is nil.
func serveCounting(accepted *atomic.Int64, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	if accepted != nil {
		ln = countingListener{ln, accepted}
	}
	go (&http.Server{Handler: h}).Serve(ln)
	return ln.Addr().String(), nil
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

type result struct {
	rps            float64
	p50, p99, p999 time.Duration
	errors, dials  int64
	backendConns   int64
	cpuPerReq      float64 // µs of the target's processes per request; 0 if unknown
	firstErr       error
	firstErrOnce   sync.Once
}

// load runs conns workers against t, each on its own keep-alive
// connection, for warmup and then for d, and measures the requests sent
// during d (the CPU per request over all of them).
func load(t target, resp response, conns int, warmup, d time.Duration) *result {
	var (
		r     result
		dials atomic.Int64
		errs  atomic.Int64
		total atomic.Int64
		wg    sync.WaitGroup
		lats  = make([][]time.Duration, conns)
	)
	addr := t.addr
	var pids []int
	var cpu0 float64
	if t.pids != nil {
		pids = t.pids()
		cpu0 = cpuSeconds(pids)
	}
	dialer := &net.Dialer{}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return dialer.DialContext(ctx, network, addr)
	}
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(d)
	for i := range conns {
		wg.Go(func() {
			// A transport per worker: one connection each, no sharing of
			// a pool between workers.
			tr := &http.Transport{
				DialContext:         dial,
				MaxConnsPerHost:     1,
				MaxIdleConnsPerHost: 1,
				DisableCompression:  true,
			}
			scheme := "http"
			if t.h2 {
				scheme = "https"
				tr.ForceAttemptHTTP2 = true
				tr.TLSClientConfig = &tls.Config{ServerName: "app.test", InsecureSkipVerify: true, NextProtos: []string{"h2"}}
			}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			req, _ := http.NewRequest("GET", scheme+"://"+addr+resp.path, nil)
			req.Host = "app.test"
			if resp.gzip {
				req.Header.Set("Accept-Encoding", "gzip")
			}
			mine := make([]time.Duration, 0, 1024)
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				err := get(client, req, resp.size)
				if err == nil {
					total.Add(1)
				}
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil {
					errs.Add(1)
					r.firstErrOnce.Do(func() { r.firstErr = err })
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			lats[i] = mine
		})
	}
	wg.Wait()
	elapsed := time.Since(measureFrom)
	if pids != nil && total.Load() > 0 {
		r.cpuPerReq = (cpuSeconds(pids) - cpu0) * 1e6 / float64(total.Load())
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	r.errors, r.dials = errs.Load(), dials.Load()
	if len(all) > 0 {
		pct := func(p float64) time.Duration { return all[min(len(all)-1, int(float64(len(all))*p))] }
		r.rps = float64(len(all)) / elapsed.Seconds()
		r.p50, r.p99, r.p999 = pct(0.50), pct(0.99), pct(0.999)
	}
	return &r
}

// get sends req and reads the whole response, which must be a 200 of size
// bytes.
func get(client *http.Client, req *http.Request, size int) error {
	gz := req.Header.Get("Accept-Encoding") != ""
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	if req.URL.Scheme == "https" && res.ProtoMajor != 2 {
		res.Body.Close()
		return fmt.Errorf("%s, not HTTP/2", res.Proto)
	}
	n, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	switch {
	case err != nil:
		return err
	case res.StatusCode != http.StatusOK:
		return fmt.Errorf("status %d", res.StatusCode)
	case gz && res.Header.Get("Content-Encoding") != "gzip":
		return fmt.Errorf("Content-Encoding %q, want gzip", res.Header.Get("Content-Encoding"))
	case !gz && n != int64(size):
		return fmt.Errorf("%d bytes, want %d", n, size)
	}
	return nil
}

func fmtDur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(time.Microsecond).String()
}

// startNginx runs nginx as a reverse proxy to backend with a keepalive
// upstream, the way piku configured it, on a free loopback port, and with
// certFile also over TLS with HTTP/2 on another.
func startNginx(bin, backend string, keepalive int, certFile, keyFile, accessLog string) (addr, tlsAddr string, pid int, stop func(), err error) {
	dir, err := os.MkdirTemp("", "proxyload-nginx")
	if err != nil {
		return "", "", 0, nil, err
	}
	if addr, err = freeAddr(); err != nil {
		return "", "", 0, nil, err
	}
	tlsServer := ""
	if certFile != "" {
		if tlsAddr, err = freeAddr(); err != nil {
			return "", "", 0, nil, err
		}
		tlsServer = fmt.Sprintf(`
  server {
    listen %s ssl http2;
    server_name app.test;
    ssl_certificate %s;
    ssl_certificate_key %s;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }`, tlsAddr, certFile, keyFile)
	}
	logDirective := "access_log off;"
	if accessLog != "" {
		logDirective = fmt.Sprintf("access_log %s combined buffer=64k flush=1s;", accessLog)
	}
	conf := fmt.Sprintf(`worker_processes auto;
daemon off;
pid %[1]s/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  %[6]s
  # piku's nginx template
  gzip on;
  gzip_proxied any;
  gzip_types text/plain text/xml text/css text/javascript application/javascript application/json application/xml image/svg+xml;
  gzip_comp_level 7;
  gzip_min_length 2048;
  gzip_vary on;
  keepalive_requests 1000000;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream app { server %[2]s; keepalive %[4]d; keepalive_requests 1000000; }
  server {
    listen %[3]s;
    server_name app.test;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }%[5]s
}
`, dir, backend, addr, keepalive, tlsServer, logDirective)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return "", "", 0, nil, err
	}
	addr, pid, stop, err = startServer("nginx", dir, addr, exec.Command(bin, "-e", "stderr", "-p", dir, "-c", confPath))
	return addr, tlsAddr, pid, stop, err
}

// startCaddy runs Caddy's reverse_proxy to backend on a free loopback port
// (no admin API, no automatic HTTPS, no access log), and with certFile
// also over TLS on another.
func startCaddy(bin, backend, certFile, keyFile string) (addr, tlsAddr string, pid int, stop func(), err error) {
	dir, err := os.MkdirTemp("", "proxyload-caddy")
	if err != nil {
		return "", "", 0, nil, err
	}
	if addr, err = freeAddr(); err != nil {
		return "", "", 0, nil, err
	}
	conf := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n}\nhttp://:%s {\n\tbind 127.0.0.1\n\tencode gzip\n\treverse_proxy %s\n}\n", portOf(addr), backend)
	if certFile != "" {
		if tlsAddr, err = freeAddr(); err != nil {
			return "", "", 0, nil, err
		}
		conf += fmt.Sprintf("https://app.test:%s {\n\tbind 127.0.0.1\n\ttls %s %s\n\tencode gzip\n\treverse_proxy %s\n}\n", portOf(tlsAddr), certFile, keyFile, backend)
	}
	confPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return "", "", 0, nil, err
	}
	cmd := exec.Command(bin, "run", "--adapter", "caddyfile", "--config", confPath)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	addr, pid, stop, err = startServer("Caddy", dir, addr, cmd)
	return addr, tlsAddr, pid, stop, err
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// selfSigned writes a self-signed certificate for app.test and its key
// into dir.
func selfSigned(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "app.test"},
		DNSNames:     []string{"app.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}

// startServer starts cmd, a server that will listen on addr, and waits
// until it does. stop ends it and removes dir.
func startServer(name, dir, addr string, cmd *exec.Cmd) (string, int, func(), error) {
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", 0, nil, err
	}
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		os.RemoveAll(dir)
	}
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, cmd.Process.Pid, stop, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return "", 0, nil, errors.New(name + " did not start listening on " + addr)
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// pageText is n bytes of text that compresses like a web page's: words
// from a small vocabulary in a fixed pseudo-random order, in paragraphs.
func pageText(n int) []byte {
	words := strings.Fields(`the proxy routes each request by its host name to the app that answers it
		and balances requests over the web instances of the app while static paths are served from
		files a cache keeps answers in memory piku deploys an app with git push builds the release
		starts new instances checks that they answer switches traffic and drains the old ones`)
	b := []byte("<!doctype html>\n<html><body>\n<p>")
	x := uint32(1)
	for i := 0; len(b) < n; i++ {
		x = x*1664525 + 1013904223
		b = append(b, words[int(x>>16)%len(words)]...)
		switch {
		case i%97 == 96:
			b = append(b, ".</p>\n<p>"...)
		case i%13 == 12:
			b = append(b, ", "...)
		default:
			b = append(b, ' ')
		}
	}
	return b[:n]
}
