package proxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// benchProxy measures GET requests for a body of size bytes, from 64
// goroutines, sent straight to the backend, through the proxy and, as a
// baseline, through a plain httputil.ReverseProxy whose transport keeps 64
// idle connections, and through the proxy with its request and response
// buffering off (proxy-unbuffered).
//
// With accessLog the proxy writes an access log (to a temporary file), and
// the rows report the CPU time of the whole test process per request
// (client, proxy and backend: compare the rows with and without a log).
func benchProxy(b *testing.B, size int, accessLog bool) { benchProxyRequest(b, size, 0, accessLog) }

// benchProxyRequest is benchProxy with a POST of upload bytes when upload
// is not 0.
func benchProxyRequest(b *testing.B, size, upload int, accessLog bool) {
	body := bytes.Repeat([]byte("x"), size)
	backend := backendServer(b, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write(body)
	})
	rt := Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{backend}}
	if accessLog {
		rt.AccessLog = filepath.Join(b.TempDir(), "access.log")
	}
	_, addr := startProxy(b, Options{}, rt)
	// The same proxy with request and response buffering off
	// (NGINX_PROXY_REQUEST_BUFFERING=off, NGINX_PROXY_BUFFERING=off):
	// what buffering costs.
	unbuf := rt
	unbuf.StreamRequests, unbuf.StreamResponses = true, true
	_, unbufAddr := startProxy(b, Options{}, unbuf)
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: backend})
	rpTransport := http.DefaultTransport.(*http.Transport).Clone()
	rpTransport.MaxIdleConnsPerHost = 64
	defer rpTransport.CloseIdleConnections()
	rp.Transport = rpTransport
	rpAddr := backendServer(b, rp.ServeHTTP)
	targets := []struct{ name, addr string }{{"direct", backend}, {"proxy", addr}, {"reverseproxy", rpAddr}, {"proxy-unbuffered", unbufAddr}}
	if accessLog {
		targets = targets[1:2]
	}
	for _, tc := range targets {
		b.Run(tc.name, func(b *testing.B) {
			tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			// Two GETs first, as an app's first visitors send: the
			// second, on a kept connection, shows the proxy that the
			// backend keeps connections, as it learns from real
			// traffic (POSTs wait for that to reuse one).
			for range 2 {
				req, _ := http.NewRequest("GET", "http://"+tc.addr+"/", nil)
				req.Host = "app.test"
				if res, err := client.Do(req); err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			}
			b.SetBytes(int64(size))
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0))) // 64 goroutines
			b.ReportAllocs()
			cpu0 := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequest("GET", "http://"+tc.addr+"/", nil)
				req.Host = "app.test"
				sent := bytes.Repeat([]byte("u"), upload)
				for pb.Next() {
					if upload > 0 {
						req.Method = "POST"
						req.Body = io.NopCloser(bytes.NewReader(sent))
						req.ContentLength = int64(upload)
					}
					res, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					n, _ := io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 || n != int64(size) {
						b.Errorf("%d, %d bytes", res.StatusCode, n)
						return
					}
				}
			})
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU is the user and system time of the test process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkProxySmall(b *testing.B)          { benchProxy(b, 13, false) }
func BenchmarkProxy1MiB(b *testing.B)           { benchProxy(b, 1<<20, false) }
func BenchmarkProxySmallAccessLog(b *testing.B) { benchProxy(b, 13, true) }

// BenchmarkProxyPost1KiB sends a form-sized body with each request.
func BenchmarkProxyPost1KiB(b *testing.B) { benchProxyRequest(b, 13, 1<<10, false) }
