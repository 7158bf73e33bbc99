package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRequestBodyBuffered: a client that uploads slowly (here: a chunked
// body sent in parts, the test deciding when the rest comes) holds no
// backend: the app is called once the body is whole, and gets it with a
// Content-Length; a request that comes meanwhile is answered before it.
func TestRequestBodyBuffered(t *testing.T) {
	var postStarted atomic.Bool
	got := make(chan string, 1)
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			fmt.Fprintf(w, "post started: %v", postStarted.Load())
			return
		}
		postStarted.Store(true)
		b, err := io.ReadAll(r.Body)
		got <- fmt.Sprintf("%d %v %q %v", r.ContentLength, r.TransferEncoding, b, err)
		io.WriteString(w, "stored")
	})
	_, addr := startProxy(t, Options{}, appRoute(be))
	c := dialWrite(t, addr, "POST /upload HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	defer c.Close()
	// While the upload is in progress, another client is answered, and
	// the app has not been called for the upload.
	if r := do(t, nil, addr, "GET", "app.test", "/", nil); r.code != 200 || r.body != "post started: false" {
		t.Fatalf("GET during the upload: %d %q, want 200 \"post started: false\"", r.code, r.body)
	}
	io.WriteString(c, "6\r\n world\r\n0\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(b) != "stored" {
		t.Errorf("upload: %d %q", res.StatusCode, b)
	}
	if g := <-got; g != `11 [] "hello world" <nil>` {
		t.Errorf("the app got %s, want the whole body with a Content-Length of 11", g)
	}
}

// TestRequestBodyStreamedWhenOff: NGINX_PROXY_REQUEST_BUFFERING=off sends
// the head to the app before the body is whole.
func TestRequestBodyStreamedWhenOff(t *testing.T) {
	headSeen := make(chan struct{})
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		close(headSeen)
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	rt, err := RouteFromEnv("app", t.TempDir(), map[string]string{"NGINX_SERVER_NAME": "app.test", "NGINX_PROXY_REQUEST_BUFFERING": "off"})
	if err != nil {
		t.Fatal(err)
	}
	rt.Backends = []string{be}
	_, addr := startProxy(t, Options{}, rt)
	c := dialWrite(t, addr, "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 10\r\n\r\nhello")
	defer c.Close()
	<-headSeen // before the rest of the body was sent
	io.WriteString(c, "world")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if string(b) != "helloworld" {
		t.Errorf("echo %q", b)
	}
}

// TestRequestBodyTooLarge: a body beyond the app's
// NGINX_CLIENT_MAX_BODY_SIZE gets 413 naming the key, whether its length
// was announced or not, buffered or streamed, and the app is not called.
func TestRequestBodyTooLarge(t *testing.T) {
	var called atomic.Int64
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		called.Add(1)
		io.Copy(io.Discard, r.Body)
	})
	for _, stream := range []bool{false, true} {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("stream=%v chunked=%v", stream, chunked), func(t *testing.T) {
				if stream && chunked {
					t.Skip("a streamed chunked body is cut by the app's own bound, not the proxy's: its head is sent before its length is known")
				}
				rt := appRoute(be)
				rt.MaxBodySize, rt.StreamRequests = 1<<10, stream
				_, addr := startProxy(t, Options{}, rt)
				body := strings.Repeat("x", 2<<10)
				req := fmt.Sprintf("POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				if chunked {
					req = fmt.Sprintf("POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)
				}
				c := dialWrite(t, addr, req)
				defer c.Close()
				res, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(res.Body)
				if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "NGINX_CLIENT_MAX_BODY_SIZE") || !strings.Contains(string(b), "(1k bytes)") {
					t.Errorf("%d %q, want 413 naming NGINX_CLIENT_MAX_BODY_SIZE and the bound", res.StatusCode, b)
				}
				if !res.Close {
					t.Error("the 413 does not close the connection")
				}
			})
		}
	}
	if n := called.Load(); n != 0 {
		t.Errorf("the app was called %d times", n)
	}
}

// TestRequestBodyTimeout: a client that stops sending its body for
// ClientBodyTimeout gets 408, and the app was not called.
func TestRequestBodyTimeout(t *testing.T) {
	var called atomic.Int64
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) { called.Add(1) })
	_, addr := startProxy(t, Options{ClientBodyTimeout: 100 * time.Millisecond}, appRoute(be))
	c := dialWrite(t, addr, "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 10\r\n\r\nhello")
	defer c.Close()
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusRequestTimeout || !res.Close {
		t.Errorf("%d close=%v, want 408 and the connection closed", res.StatusCode, res.Close)
	}
	if n := called.Load(); n != 0 {
		t.Errorf("the app was called %d times", n)
	}
}

// openIn returns the proxy's open files that were in dir (unlinked: the
// link reads "path (deleted)").
func openIn(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd to look at open files:", err)
	}
	var open []string
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && strings.HasPrefix(l, dir+string(filepath.Separator)) {
			open = append(open, l)
		}
	}
	return open
}

// TestRequestBodyTempFile: a body beyond what is held in memory goes to a
// file in the proxy's temporary directory (made 0700), unlinked while the
// request runs and closed when it ends.
func TestRequestBodyTempFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tmp")
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	type seen struct {
		open, listed int
		ok           bool
	}
	in := make(chan seen, 1)
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		ents, _ := os.ReadDir(dir)
		b, _ := io.ReadAll(r.Body)
		in <- seen{len(openIn(t, dir)), len(ents), bytes.Equal(b, body)}
	})
	_, addr := startProxy(t, Options{TempDir: dir}, appRoute(be))
	if r := do(t, nil, addr, "POST", "app.test", "/", bytes.NewReader(body)); r.code != 200 {
		t.Fatalf("%d %q", r.code, r.body)
	}
	s := <-in
	if !s.ok || s.open != 1 || s.listed != 0 {
		t.Errorf("while the app ran: body intact %v, %d files open in the temporary directory (want 1), %d listed (want 0: unlinked)", s.ok, s.open, s.listed)
	}
	if open := openIn(t, dir); len(open) != 0 {
		t.Errorf("after the request: %q still open", open)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("temporary directory: %v %v, want mode 0700", fi.Mode(), err)
	}
}

// TestResponseBuffered: a client that does not read its answer does not
// hold the app: the proxy reads the whole answer (32 MiB, more than the
// sockets between them hold) while the client reads nothing, and the
// client then gets all of it.
func TestResponseBuffered(t *testing.T) {
	const size = 32 << 20
	wrote := make(chan error, 1)
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		_, err := io.Copy(w, io.LimitReader(zeros{}, size))
		wrote <- err
	})
	_, addr := startProxy(t, Options{}, appRoute(be))
	c := dialWrite(t, addr, "GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n")
	defer c.Close()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("the app's write: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the app is still writing its answer to a client that reads nothing: it is held by the client")
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, res.Body)
	if n != size || err != nil {
		t.Errorf("client read %d bytes (%v), want %d", n, err, size)
	}
}

// TestResponseBufferedClientKeepsUp: an answer read ahead of a client
// that keeps up with it is not written to disk (as nginx writes to its
// temporary file only while the client cannot take more): 64 answers of
// 4 MiB, to a client that reads each as fast as it can, make no temporary
// file, with the proxy on one thread as on two. (Keeping up is taking
// something of each write within spillAfter: an hour here, so that a busy
// machine cannot make the client look slow.)
func TestResponseBufferedClientKeepsUp(t *testing.T) {
	const size = 4 << 20
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		io.Copy(w, io.LimitReader(zeros{}, size))
	})
	s, addr := startProxy(t, Options{}, appRoute(be))
	s.spillAfter.Store(int64(time.Hour))
	for _, procs := range []int{1, 2} {
		prev := runtime.GOMAXPROCS(procs)
		for range 32 {
			r := do(t, nil, addr, "GET", "app.test", "/big", nil)
			if r.code != 200 || len(r.body) != size {
				t.Fatalf("GOMAXPROCS=%d: %d, %d bytes; want 200 and %d", procs, r.code, len(r.body), size)
			}
		}
		runtime.GOMAXPROCS(prev)
		if n := s.spoolFiles.Swap(0); n != 0 {
			t.Errorf("GOMAXPROCS=%d: %d of 32 answers went to a temporary file, want none", procs, n)
		}
	}
}

// zeros reads as zero bytes without end.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestResponseBufferingRules: which answers are read ahead of the client.
func TestResponseBufferingRules(t *testing.T) {
	for _, tt := range []struct {
		name   string
		whole  bool
		stream bool
		hdr    http.Header
		want   bool
	}{
		{"ordinary", false, false, http.Header{"Content-Type": {"text/html"}}, true},
		{"here whole", true, false, nil, false},
		{"NGINX_PROXY_BUFFERING=off", false, true, nil, false},
		{"event stream", false, false, http.Header{"Content-Type": {"text/event-stream; charset=utf-8"}}, false},
		{"X-Accel-Buffering: no", false, false, http.Header{"X-Accel-Buffering": {"no"}}, false},
		{"X-Accel-Buffering: yes", false, false, http.Header{"X-Accel-Buffering": {"yes"}}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.hdr
			if h == nil {
				h = http.Header{}
			}
			rt := &route{Route: Route{StreamResponses: tt.stream}}
			if got := buffered(tt.whole, h, rt); got != tt.want {
				t.Errorf("buffered = %v, want %v", got, tt.want)
			}
			if _, ok := h["X-Accel-Buffering"]; ok {
				t.Error("X-Accel-Buffering reaches the client")
			}
		})
	}
}

// TestSpoolReadsWhileWritten: a spool's reader gets what was written
// across the memory and file parts, waits for what is still to come, and
// ends with the writer's end.
func TestSpoolReadsWhileWritten(t *testing.T) {
	sp := newSpool(t.TempDir(), -1, nil)
	defer sp.close()
	want := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz0123456789"), 10000) // 360 KB
	var wg sync.WaitGroup
	wg.Go(func() {
		for p := want; len(p) > 0; {
			n := min(len(p), 7777)
			if _, err := sp.Write(p[:n]); err != nil {
				t.Error(err)
				return
			}
			p = p[n:]
		}
		sp.finish(nil)
	})
	got, err := io.ReadAll(spoolReader{sp: sp})
	wg.Wait()
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("read %d bytes (%v), want %d the same", len(got), err, len(want))
	}
}

// TestSpoolFillSpillsForStalledClient: an answer's reading ahead goes on
// into the file once a write to the client has taken nothing for
// spillAfter, so that the app is not held by a client that does not read;
// the client then gets every byte, in order.
func TestSpoolFillSpillsForStalledClient(t *testing.T) {
	var files atomic.Int64
	sp := newSpool(t.TempDir(), -1, &files)
	defer sp.close()
	sp.spillAfter = time.Millisecond
	want := make([]byte, 1<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	release := make(chan struct{})
	w := &blockedWriter{release: release}
	drained := make(chan error, 1)
	go func() { drained <- sp.drainTo(w, nil, make([]byte, 32<<10)) }()
	if err := sp.fill(bytes.NewReader(want), make([]byte, 32<<10)); err != nil {
		t.Fatal(err)
	}
	sp.finish(nil)
	if files.Load() != 1 || sp.fw == 0 {
		t.Errorf("%d files, %d bytes in the file; want 1 file holding what the ring could not", files.Load(), sp.fw)
	}
	close(release)
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.got.Bytes(), want) {
		t.Errorf("the client got %d bytes, want the %d written, in order", w.got.Len(), len(want))
	}
}

// blockedWriter's writes wait until release is closed.
type blockedWriter struct {
	release chan struct{}
	got     bytes.Buffer
}

func (w *blockedWriter) Write(p []byte) (int, error) {
	<-w.release
	return w.got.Write(p)
}

// TestSpoolRingAndFile: what a reader that falls behind leaves goes to the
// file, in order after the ring; once the reader has caught up, the ring
// is used again and the file is not grown.
func TestSpoolRingAndFile(t *testing.T) {
	sp := newSpool(t.TempDir(), -1, nil)
	defer sp.close()
	rd := spoolReader{sp: sp}
	var want, got []byte
	write := func(n int, c byte) {
		t.Helper()
		p := bytes.Repeat([]byte{c}, n)
		if _, err := sp.Write(p); err != nil {
			t.Fatal(err)
		}
		want = append(want, p...)
	}
	read := func(n int) {
		t.Helper()
		buf := make([]byte, n)
		if _, err := io.ReadFull(rd, buf); err != nil {
			t.Fatal(err)
		}
		got = append(got, buf...)
	}
	write(spoolMem-10, 'a') // the ring
	write(100, 'b')         // 10 in the ring, 90 to the file
	if sp.f == nil || sp.fw != 90 {
		t.Fatalf("file %v, %d bytes in it; want 90", sp.f != nil, sp.fw)
	}
	write(50, 'c') // after the file's, in the file
	read(spoolMem + 140)
	if sp.n != 0 || sp.fr != sp.fw {
		t.Fatal("not caught up after reading all")
	}
	write(1000, 'd') // caught up: back to the ring
	if sp.fw != 140 {
		t.Errorf("the file grew to %d bytes after the reader caught up, want 140", sp.fw)
	}
	read(1000)
	sp.finish(nil)
	if n, err := rd.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("after the end: %d, %v", n, err)
	}
	if !bytes.Equal(got, want) {
		t.Error("read back out of order")
	}
}
