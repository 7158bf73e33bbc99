package proxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime"
	"testing"
)

// benchProxy measures GET requests for a body of size bytes, from 64
// goroutines, sent straight to the backend, through the proxy and, as a
// baseline, through a plain httputil.ReverseProxy whose transport keeps 64
// idle connections.
func benchProxy(b *testing.B, size int) { benchProxyRequest(b, size, 0) }

// benchProxyRequest is benchProxy with a POST of upload bytes when upload
// is not 0.
func benchProxyRequest(b *testing.B, size, upload int) {
	body := bytes.Repeat([]byte("x"), size)
	backend := backendServer(b, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write(body)
	})
	_, addr := startProxy(b, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{backend}})
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: backend})
	rpTransport := http.DefaultTransport.(*http.Transport).Clone()
	rpTransport.MaxIdleConnsPerHost = 64
	defer rpTransport.CloseIdleConnections()
	rp.Transport = rpTransport
	rpAddr := backendServer(b, rp.ServeHTTP)
	for _, tc := range []struct{ name, addr string }{{"direct", backend}, {"proxy", addr}, {"reverseproxy", rpAddr}} {
		b.Run(tc.name, func(b *testing.B) {
			tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			b.SetBytes(int64(size))
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0))) // 64 goroutines
			b.ReportAllocs()
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
		})
	}
}

func BenchmarkProxySmall(b *testing.B) { benchProxy(b, 13) }
func BenchmarkProxy1MiB(b *testing.B)  { benchProxy(b, 1<<20) }

// BenchmarkProxyPost1KiB sends a form-sized body with each request.
func BenchmarkProxyPost1KiB(b *testing.B) { benchProxyRequest(b, 13, 1<<10) }
