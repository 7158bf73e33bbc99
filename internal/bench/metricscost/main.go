// Command metricscost measures what the metrics cost the proxy: the CPU
// time piku's proxy process spends per request, with its metrics observer
// on and off, for a small response.
//
//	go run ./internal/bench/metricscost -rounds 6 -duration 3s -conns 32
//
// Two proxy processes run side by side in front of one backend, one with
// the metrics registry as its Observer and one without. Each round loads
// both, one after the other (the order alternating between rounds), and
// reads each proxy's CPU time (user + system, /proc/PID/stat) before and
// after: CPU per request is its growth over the requests answered. On a
// shared, noisy machine, interleaving the two keeps background load from
// favouring one; the table shows every round and the medians.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/piku/piku/internal/bench/machine"
	"github.com/piku/piku/internal/daemon"
	"github.com/piku/piku/internal/metrics"
	"github.com/piku/piku/internal/procgroup"
	"github.com/piku/piku/proxy"
)

func main() {
	rounds := flag.Int("rounds", 6, "rounds; each loads the proxy with metrics on and off once")
	duration := flag.Duration("duration", 3*time.Second, "load per proxy per round")
	conns := flag.Int("conns", 32, "concurrent keep-alive connections")
	serve := flag.String("serve-proxy", "", "internal: run only the proxy in front of this backend address")
	withMetrics := flag.Bool("metrics", false, "internal: with -serve-proxy, observe requests for metrics")
	flag.Parse()
	log.SetFlags(0)
	if *serve != "" {
		if err := proxyOnly(*serve, *withMetrics); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *rounds < 1 || *conns < 1 || *duration <= 0 {
		log.Fatal("metricscost: -rounds, -conns and -duration must be positive")
	}
	if err := run(*rounds, *conns, *duration); err != nil {
		log.Fatal(err)
	}
}

// proxyOnly serves the proxy for app.test in front of backend until
// SIGTERM, after printing its address.
func proxyOnly(backend string, withMetrics bool) error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(daemon.GCPercent) // as piku daemon runs it
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	o := proxy.Options{HTTPAddr: "127.0.0.1:0"}
	if withMetrics {
		o.Observer = metrics.New(metrics.Sources{})
	}
	p := proxy.New(o)
	p.SetRoute(proxy.Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{backend}})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case err := <-done:
		return err
	}
	addr, _ := p.Addrs()
	fmt.Println(addr)
	return <-done
}

type proxyProc struct {
	name string
	cmd  *exec.Cmd
	addr string
}

func startProxy(backend string, withMetrics bool) (*proxyProc, error) {
	cmd := exec.Command(os.Args[0], "-serve-proxy", backend, fmt.Sprintf("-metrics=%v", withMetrics))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var line [64]byte
	n, err := out.Read(line[:])
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("proxy process: %w", err)
	}
	name := "metrics off"
	if withMetrics {
		name = "metrics on"
	}
	return &proxyProc{name: name, cmd: cmd, addr: strings.TrimSpace(string(line[:n]))}, nil
}

func (p *proxyProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}

func run(rounds, conns int, d time.Duration) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	body := []byte("hello, world\n")
	go (&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}).Serve(ln)
	backend := ln.Addr().String()
	var procs []*proxyProc
	for _, on := range []bool{false, true} {
		p, err := startProxy(backend, on)
		if err != nil {
			return err
		}
		defer p.stop()
		procs = append(procs, p)
	}
	fmt.Printf("%d rounds, %s per proxy per round, %d keep-alive connections, %d CPUs, load average %s\n\n",
		rounds, d, conns, runtime.NumCPU(), machine.LoadAverage())
	fmt.Println("| round | proxy | req/s | CPU µs/request |")
	fmt.Println("|---:|---|---:|---:|")
	perReq := map[string][]float64{}
	rps := map[string][]float64{}
	for r := range rounds {
		order := procs
		if r%2 == 1 {
			order = []*proxyProc{procs[1], procs[0]}
		}
		for _, p := range order {
			pid := p.cmd.Process.Pid
			cpu0 := procgroup.CPU(pid)
			n, elapsed := load(p.addr, conns, d)
			cpu := procgroup.CPU(pid) - cpu0
			if n == 0 {
				return fmt.Errorf("%s: no request answered", p.name)
			}
			us := cpu / float64(n) * 1e6
			perReq[p.name] = append(perReq[p.name], us)
			rps[p.name] = append(rps[p.name], float64(n)/elapsed.Seconds())
			fmt.Printf("| %d | %s | %.0f | %.1f |\n", r+1, p.name, float64(n)/elapsed.Seconds(), us)
		}
	}
	fmt.Println()
	fmt.Println("| proxy | median req/s | median CPU µs/request |")
	fmt.Println("|---|---:|---:|")
	for _, p := range procs {
		fmt.Printf("| %s | %.0f | %.1f |\n", p.name, median(rps[p.name]), median(perReq[p.name]))
	}
	// Rounds pair the two under about the same background load.
	diffs := make([]float64, rounds)
	for i := range diffs {
		diffs[i] = perReq["metrics on"][i] - perReq["metrics off"][i]
	}
	slices.Sort(diffs)
	fmt.Printf("\nmetrics on minus off, per round: median %+.1f µs/request (from %+.1f to %+.1f)\n",
		median(diffs), diffs[0], diffs[len(diffs)-1])
	return nil
}

// load sends GETs on conns keep-alive connections for d and returns how
// many were answered with a 200, and over what time.
func load(addr string, conns int, d time.Duration) (int64, time.Duration) {
	var n atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for range conns {
		wg.Go(func() {
			tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			req.Host = "app.test"
			for time.Now().Before(end) {
				res, err := c.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					n.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return n.Load(), time.Since(start)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
