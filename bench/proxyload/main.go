// Command proxyload measures requests per second and latency percentiles
// of a small and a 1 MiB response served by a backend directly, through
// piku's proxy and, when nginx is installed, through nginx with a
// keepalive upstream. It prints a markdown table.
//
//	go run ./bench/proxyload -duration 10s -conns 64
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/piku/piku/proxy"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "how long each measurement runs")
	conns := flag.Int("conns", 64, "concurrent connections")
	nginxBin := flag.String("nginx", "", "nginx binary; default: nginx on PATH or /usr/sbin/nginx")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*duration, *conns, *nginxBin); err != nil {
		log.Fatal(err)
	}
}

type target struct{ name, addr string }

func run(duration time.Duration, conns int, nginxBin string) error {
	small := []byte("hello, world\n")
	big := bytes.Repeat([]byte("x"), 1<<20)
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(backend, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write(big)
			return
		}
		w.Write(small)
	}))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := proxy.New(proxy.Options{HTTPAddr: "127.0.0.1:0"})
	p.SetRoute(proxy.Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{backend.Addr().String()}})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case err := <-done:
		return err
	}
	pikuAddr, _ := p.Addrs()
	targets := []target{{"backend direct", backend.Addr().String()}, {"piku proxy", pikuAddr}}

	if nginxBin == "" {
		for _, c := range []string{"nginx", "/usr/sbin/nginx"} {
			if p, err := exec.LookPath(c); err == nil {
				nginxBin = p
				break
			}
		}
	}
	if nginxBin != "" {
		addr, stop, err := startNginx(nginxBin, backend.Addr().String())
		if err != nil {
			log.Printf("nginx skipped: %v", err)
		} else {
			defer stop()
			targets = append(targets, target{"nginx (keepalive upstream)", addr})
		}
	}

	fmt.Printf("%d connections, %s per row, GOMAXPROCS=%d\n\n", conns, duration, runtime.GOMAXPROCS(0))
	fmt.Println("| target | response | req/s | p50 | p99 |")
	fmt.Println("|---|---|---:|---:|---:|")
	for _, path := range []string{"/small", "/big"} {
		for _, t := range targets {
			rps, p50, p99, err := load(t.addr, path, conns, duration)
			if err != nil {
				return fmt.Errorf("%s %s: %w", t.name, path, err)
			}
			label := "13 B"
			if path == "/big" {
				label = "1 MiB"
			}
			fmt.Printf("| %s | %s | %.0f | %s | %s |\n", t.name, label, rps, p50.Round(time.Microsecond), p99.Round(time.Microsecond))
		}
	}
	return nil
}

// load sends GET path to addr from conns goroutines, each on its own
// keepalive connection, for d.
func load(addr, path string, conns int, d time.Duration) (float64, time.Duration, time.Duration, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var (
		mu   sync.Mutex
		lats []time.Duration
		errs []error
		wg   sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for range conns {
		wg.Go(func() {
			var mine []time.Duration
			req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
			req.Host = "app.test"
			for time.Now().Before(deadline) {
				t0 := time.Now()
				res, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if err == nil && res.StatusCode != 200 {
						err = fmt.Errorf("status %d", res.StatusCode)
					}
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(errs) > 0 {
		return 0, 0, 0, errs[0]
	}
	if len(lats) == 0 {
		return 0, 0, 0, fmt.Errorf("no request completed")
	}
	slices.Sort(lats)
	pct := func(p float64) time.Duration { return lats[min(len(lats)-1, int(float64(len(lats))*p))] }
	return float64(len(lats)) / elapsed.Seconds(), pct(0.50), pct(0.99), nil
}

// startNginx runs nginx as a reverse proxy to backend with a keepalive
// upstream, the way piku configured it, on a free loopback port.
func startNginx(bin, backend string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "proxyload-nginx")
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	conf := fmt.Sprintf(`worker_processes auto;
daemon off;
pid %[1]s/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream app { server %[2]s; keepalive 64; }
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
  }
}
`, dir, backend, addr)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "-e", "stderr", "-p", dir, "-c", confPath)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		os.RemoveAll(dir)
	}
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, stop, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("nginx did not start listening on %s", addr)
}
