package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piku/piku/proxy/internal/splice"
)

// randomBytes is n bytes of a seeded random stream: incompressible, and
// with no run a misplaced piece would pass for.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// TestSplicedAnswers: an answer with a Content-Length of spliceMin bytes
// or more is relayed through a pipe (splice.go), buffered or not, and
// reaches the client byte for byte as net/http's ReverseProxy (the
// reference) relays it, with the same Content-Length; two answers follow
// each other on one client connection, so the framing after a relayed
// body holds. Smaller answers are copied.
func TestSplicedAnswers(t *testing.T) {
	sizes := []int{spliceMin - 1, spliceMin, 1<<20 + 7, 3 << 20}
	bodies := map[string][]byte{}
	for i, n := range sizes {
		bodies[fmt.Sprintf("/%d", n)] = randomBytes(n, uint64(i+1))
	}
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		b := bodies[r.URL.Path]
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Write(b)
	})
	ref := httptest.NewServer(httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: be}))
	t.Cleanup(ref.Close)
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("StreamResponses=%v", stream), func(t *testing.T) {
			rt := appRoute(be)
			rt.StreamResponses = stream
			s, addr := startProxy(t, Options{}, rt)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for _, n := range sizes {
				path := fmt.Sprintf("/%d", n)
				before := s.splicedAnswers.Load()
				fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: app.test\r\n\r\n", path)
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				got, err := io.ReadAll(res.Body)
				if err != nil {
					t.Fatalf("%s: body: %v", path, err)
				}
				want := do(t, nil, ref.Listener.Addr().String(), "GET", "app.test", path, nil)
				if res.StatusCode != want.code || res.Header.Get("Content-Length") != want.header.Get("Content-Length") ||
					sha256.Sum256(got) != sha256.Sum256([]byte(want.body)) {
					t.Fatalf("%s: %d, Content-Length %s, %d bytes; net/http's proxy: %d, %s, %d bytes (same bytes: %v)", path,
						res.StatusCode, res.Header.Get("Content-Length"), len(got), want.code, want.header.Get("Content-Length"),
						len(want.body), bytes.Equal(got, []byte(want.body)))
				}
				spliced := s.splicedAnswers.Load() - before
				switch {
				case onNetHTTP1() || !splice.Supported:
				case n >= spliceMin && spliced != 1:
					t.Errorf("%s: not relayed through a pipe", path)
				case n < spliceMin && spliced != 0:
					t.Errorf("%s: relayed through a pipe, below spliceMin", path)
				}
			}
		})
	}
}

// TestSplicedAnswerClientBehind: a client that stops reading a relayed
// answer frees the app all the same (the rest goes to the spool, what
// the pipe held first, and for a chunked answer what completes the chunk
// under way), and gets every byte in order once it reads on.
func TestSplicedAnswerClientBehind(t *testing.T) {
	const size = 8 << 20
	body := randomBytes(size, 42)
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			wrote := make(chan error, 1)
			be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
				if !chunked {
					w.Header().Set("Content-Length", fmt.Sprint(size))
				}
				var err error
				for off := 0; off < size && err == nil; off += 1 << 20 {
					_, err = w.Write(body[off : off+1<<20])
					w.(http.Flusher).Flush() // chunks of 1 MiB
				}
				wrote <- err
			})
			s, addr := startProxy(t, Options{}, appRoute(be))
			c := smallWindowDial(t, addr)
			io.WriteString(c, "GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n")
			br := bufio.NewReader(c)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			first := make([]byte, 100<<10)
			if _, err := io.ReadFull(res.Body, first); err != nil {
				t.Fatal(err)
			}
			// The client reads no more until the app has written all.
			select {
			case err := <-wrote:
				if err != nil {
					t.Fatalf("the app's write: %v", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("the app is still writing to a client that stopped reading: held by the client")
			}
			rest, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if got := append(first, rest...); !bytes.Equal(got, body) {
				t.Fatalf("client got %d bytes, not the app's %d (first difference at %d)", len(got), size, firstDiff(got, body))
			}
			if !onNetHTTP1() && splice.Supported {
				if s.splicedAnswers.Load() != 1 || s.spoolFiles.Load() != 1 {
					t.Errorf("relayed through a pipe: %d, spooled to a file: %d; want 1 and 1", s.splicedAnswers.Load(), s.spoolFiles.Load())
				}
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestSplicedAnswerCutShort: an app that ends its answer before its
// Content-Length, or in the middle of a chunk, cuts the client's
// connection once what came is relayed: the client sees an answer cut
// short, never a whole one, and never waits.
func TestSplicedAnswerCutShort(t *testing.T) {
	const size, sent = 1 << 20, 300 << 10
	body := randomBytes(sent, 7)
	for name, head := range map[string]string{
		"Content-Length": fmt.Sprintf("Content-Length: %d\r\n\r\n", size),
		"chunked":        fmt.Sprintf("Transfer-Encoding: chunked\r\n\r\n%x\r\n", size),
	} {
		be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			brw.WriteString("HTTP/1.1 200 OK\r\n" + head)
			brw.Write(body)
			brw.Flush()
		})
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/StreamResponses=%v", name, stream), func(t *testing.T) {
				rt := appRoute(be)
				rt.StreamResponses = stream
				_, addr := startProxy(t, Options{}, rt)
				c := dialWrite(t, addr, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
				defer c.Close()
				res, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(res.Body)
				if err == nil || len(got) >= size {
					t.Fatalf("read %d bytes (%v): want an answer cut short", len(got), err)
				}
				if !bytes.Equal(got, body[:len(got)]) {
					t.Fatalf("the %d bytes that came differ from the app's at %d", len(got), firstDiff(got, body))
				}
			})
		}
	}
}

// TestSplicedAnswerNotWhenTransformed: answers that do not go out as they
// came are copied: one compressed for the client and the answer to HEAD
// are never relayed through a pipe; the bytes of one that is are counted
// as the access log and the metrics count them.
func TestSplicedAnswerNotWhenTransformed(t *testing.T) {
	wantSpliced := int64(1) // the identity answer below
	if !splice.Supported || onNetHTTP1() {
		wantSpliced = 0 // only on Linux, by piku's HTTP/1.1 server; the rest holds everywhere
	}
	const size = 1 << 20
	text := bytes.Repeat([]byte("<p>piku</p>\n"), size/12+1)[:size]
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.Write(text)
	})
	rec := newRecorder()
	rt := appRoute(be)
	rt.Compress = true
	s, addr := startProxy(t, Options{Observer: rec}, rt)
	r := do(t, nil, addr, "GET", "app.test", "/gz", nil, "Accept-Encoding", "gzip")
	rec.take(1)
	if r.header.Get("Content-Encoding") != "gzip" || s.splicedAnswers.Load() != 0 {
		t.Errorf("compressed answer: Content-Encoding %q, relayed through a pipe %d times; want gzip, 0", r.header.Get("Content-Encoding"), s.splicedAnswers.Load())
	}
	raw := rawRequest(t, addr, "HEAD /head HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
	rec.take(1)
	if !strings.HasPrefix(raw, "HTTP/1.1 200") || !strings.HasSuffix(raw, "\r\n\r\n") || s.splicedAnswers.Load() != 0 {
		t.Errorf("HEAD: %q, relayed through a pipe %d times", raw, s.splicedAnswers.Load())
	}
	r = do(t, nil, addr, "GET", "app.test", "/plain", nil)
	ev := rec.take(1)
	if len(r.body) != size || s.splicedAnswers.Load() != wantSpliced {
		t.Errorf("identity answer: %d bytes, relayed through a pipe %d times; want %d, %d", len(r.body), s.splicedAnswers.Load(), size, wantSpliced)
	}
	if want := fmt.Sprintf("app done 200 in=0 out=%d", size); !slices.Contains(ev, want) {
		t.Errorf("events %q, want %q", ev, want)
	}
}

// TestSplicedAnswerSendTimeout: a client that stops reading an answer
// relayed through a pipe unbuffered (NGINX_PROXY_BUFFERING=off) is cut
// after the send timeout, as one whose answer is copied.
func TestSplicedAnswerSendTimeout(t *testing.T) {
	const size = 32 << 20
	body := randomBytes(1<<20, 3)
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		for range size / len(body) {
			if _, err := w.Write(body); err != nil {
				return
			}
		}
	})
	rec := newRecorder()
	rec.conns = make(chan int, 1000)
	rt := appRoute(be)
	rt.StreamResponses = true
	s, addr := startProxy(t, Options{Observer: rec, SendTimeout: 200 * time.Millisecond}, rt)
	c := smallWindowDial(t, addr)
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n")
	// The proxy closes the connection by itself.
	for d := range rec.conns {
		if d < 0 {
			break
		}
	}
	n, err := io.Copy(io.Discard, c)
	t.Logf("read %d bytes of %d after the cut (%v)", n, size, err)
	if n >= size {
		t.Errorf("read the whole answer (%d bytes) after the cut", n)
	}
	if !onNetHTTP1() && splice.Supported && s.splicedAnswers.Load() != 1 {
		t.Errorf("relayed through a pipe %d times, want 1", s.splicedAnswers.Load())
	}
}

// TestSplicedAnswerWithoutSendTimeout: with the send timeout off, the
// short deadline that tells a client behind (spillAfter) is not left on
// the connection: the rest of the answer, and the next one, are written.
func TestSplicedAnswerWithoutSendTimeout(t *testing.T) {
	const size = 1 << 20
	body := randomBytes(size, 5)
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.Write(body)
	})
	s, addr := startProxy(t, Options{SendTimeout: -1}, appRoute(be))
	s.spillAfter.Store(1) // every client is behind at once: the spool takes over
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := range 2 {
		fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: app.test\r\n\r\n", i)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		got, err := io.ReadAll(res.Body)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("answer %d: %d bytes (%v), want the app's %d", i, len(got), err, size)
		}
	}
}

// TestSplicedChunkedAnswers: chunked answers whose chunks are large go
// through a pipe, framed by the proxy a chunk at a time; one whose first
// chunk is small is copied, and one that turns from large chunks to small
// ones hands the rest to a copy between chunks. Each reaches the client byte for byte
// and with the trailers that net/http's ReverseProxy (the reference) gives
// it; the metrics count its data, not its framing.
func TestSplicedChunkedAnswers(t *testing.T) {
	data := randomBytes(4<<20, 11)
	cases := map[string][]int{
		"one chunk of 1 MiB":            {1 << 20},
		"chunks of 100 KiB":             {100 << 10, 100 << 10, 100 << 10, 7},
		"small chunks":                  {2000, 3000, 100, 5000},
		"large, then small, then large": {200 << 10, 1000, 2000, 300 << 10, 5},
		"an odd size":                   {(1 << 20) + 12345},
	}
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		sizes, ok := cases[r.URL.Query().Get("c")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Trailer", "X-Sum")
		f := w.(http.Flusher)
		off := 0
		for _, n := range sizes {
			w.Write(data[off : off+n])
			f.Flush() // one chunk each
			off += n
		}
		w.Header().Set("X-Sum", fmt.Sprint(off))
	})
	ref := httptest.NewServer(httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: be}))
	t.Cleanup(ref.Close)
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("StreamResponses=%v", stream), func(t *testing.T) {
			rec := newRecorder()
			rt := appRoute(be)
			rt.StreamResponses = stream
			s, addr := startProxy(t, Options{Observer: rec}, rt)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for name, sizes := range cases {
				path := "/?c=" + url.QueryEscape(name)
				before := s.splicedAnswers.Load()
				fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: app.test\r\n\r\n", path)
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				got, err := io.ReadAll(res.Body)
				if err != nil {
					t.Fatalf("%s: body: %v", name, err)
				}
				want := refGet(t, ref.Listener.Addr().String(), path)
				if !bytes.Equal(got, want.body) || res.Trailer.Get("X-Sum") != want.trailer.Get("X-Sum") ||
					len(res.TransferEncoding) != 1 {
					t.Fatalf("%s: %d bytes, trailer %q, %q; net/http's proxy: %d bytes, trailer %q (same bytes: %v)", name,
						len(got), res.Trailer.Get("X-Sum"), res.TransferEncoding, len(want.body), want.trailer.Get("X-Sum"),
						bytes.Equal(got, want.body))
				}
				total := 0
				for _, n := range sizes {
					total += n
				}
				ev := rec.take(1)
				if w := fmt.Sprintf("app done 200 in=0 out=%d", total); !slices.Contains(ev, w) {
					t.Errorf("%s: events %q, want %q", name, ev, w)
				}
				want1 := int64(1) // a relay that hands small chunks to a copy
				if sizes[0] < 16<<10 {
					want1 = 0 // small from the start: copied
				}
				if spliced := s.splicedAnswers.Load() - before; !onNetHTTP1() && splice.Supported && spliced != want1 {
					t.Errorf("%s: relayed through a pipe %d times, want %d", name, spliced, want1)
				}
			}
		})
	}
}

type refAnswer struct {
	body    []byte
	trailer http.Header
}

// refGet gets path from the reference proxy at addr, trailers included.
func refGet(t *testing.T, addr, path string) refAnswer {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = "app.test"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return refAnswer{b, res.Trailer}
}

// TestSplicedChunkedAnswerHTTP10: an HTTP/1.0 client, whose answer ends
// with the connection instead of being chunked, gets a chunked answer
// with large chunks copied whole.
func TestSplicedChunkedAnswerHTTP10(t *testing.T) {
	body := randomBytes(1<<20, 9)
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(body) // chunked: more than net/http buffers
	})
	s, addr := startProxy(t, Options{}, appRoute(be))
	raw := rawRequest(t, addr, "GET / HTTP/1.0\r\nHost: app.test\r\n\r\n")
	head, got, _ := strings.Cut(raw, "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.0 200") && !strings.HasPrefix(head, "HTTP/1.1 200") || strings.Contains(strings.ToLower(head), "chunked") {
		t.Fatalf("head %q", head)
	}
	if !bytes.Equal([]byte(got), body) {
		t.Fatalf("%d bytes, want the app's %d (first difference at %d)", len(got), len(body), firstDiff([]byte(got), body))
	}
	if s.splicedAnswers.Load() != 0 {
		t.Errorf("relayed through a pipe %d times, want 0", s.splicedAnswers.Load())
	}
}
