package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/piku/piku/proxy/internal/upstream"
)

// Slow-client protection, as nginx gives it (proxy_request_buffering,
// proxy_buffering): a request body is read whole before the app is
// called, and a response is read from the app as fast as the app sends
// it, so that a client that sends or reads slowly holds the proxy's
// memory and disk, never one of the app's few workers (a uWSGI app has
// two processes, a gunicorn one four sync workers). What is held beyond
// spoolMem bytes not yet read goes to a temporary file in
// Options.TempDir, unlinked as soon as it is made, so that nothing is
// left on disk when the request ends, however it ends; an answer goes
// there only while the client is behind (waitForClient), so that one read
// by a client that keeps up costs no disk and no copy.

// spoolMem is how much of one body is held in memory.
const spoolMem = 64 << 10

// errSpoolAborted ends the writer of a spool whose reader gave up.
var errSpoolAborted = errors.New("body buffer abandoned")

// spool is a body held by the proxy between a writer and a reader: up to
// spoolMem bytes not yet read in a ring in memory and, when the reader
// falls that far behind, what comes next in an unlinked temporary file,
// until the reader has caught up with it. A reader that keeps up (a
// client reading as fast as the app sends) costs no disk. One goroutine
// writes it (Write or fill, then finish); one reads it as it grows
// (spoolReader or drainTo).
type spool struct {
	dir  string
	mu   sync.Mutex
	more sync.Cond // signalled when data comes or goes, or the body ends
	ring []byte    // made at the first write
	r, n int       // the ring's read position and bytes unread
	hint int64     // the body's length when known, else -1
	f    *os.File
	fw   int64 // bytes written to the file
	fr   int64 // bytes of the file read
	// inFile sends writes to the file: the ring was full. It holds until
	// the reader has read the file to its end and the ring is empty, so
	// that what is in the ring is always older than what is in the file.
	inFile bool
	done   bool  // finish was called
	err    error // the writer's error, or errSpoolAborted
	// files counts the bodies that went to a temporary file (nil: not
	// counted).
	files *atomic.Int64

	// For an answer (fill and drainTo):
	pooled bool // ring came from ringPool
	// writing is set while drainTo writes to the client: fill, its ring
	// full, then waits spillAfter for that write to take some of it
	// before it goes on to the file.
	writing    bool
	spillAfter time.Duration
	wake       *time.Timer // ends fill's wait for a write (spillAfter)
}

// spillAfter is how long an answer's reading ahead, its ring full, waits
// for a write to the client under way to take some of it before what
// comes next goes to the temporary file: a client that cannot take
// anything for that long is behind (nginx writes to its temporary file
// when the client's socket takes no more). A client that keeps up never
// makes the answer go to the file, and the app waits at most this long
// for a slow one.
const spillAfter = 5 * time.Millisecond

// ringPool holds answers' rings (spoolMem bytes each).
var ringPool = sync.Pool{New: func() any { b := make([]byte, spoolMem); return &b }}

func newSpool(dir string, size int64, files *atomic.Int64) *spool {
	sp := &spool{dir: dir, hint: size, files: files, spillAfter: spillAfter}
	sp.more.L = &sp.mu
	return sp
}

// makeRing makes the ring, of the body's length when that is known and
// smaller than spoolMem; pooled takes a full-size one from ringPool. sp.mu
// is held.
func (sp *spool) makeRing(pooled bool) {
	if sp.ring != nil {
		return
	}
	if sp.hint > 0 && sp.hint < spoolMem {
		sp.ring = make([]byte, sp.hint)
		return
	}
	if pooled {
		sp.ring, sp.pooled = *ringPool.Get().(*[]byte), true
		return
	}
	sp.ring = make([]byte, spoolMem)
}

// free returns the ring's free space that comes next, or nil when the
// ring is full. sp.mu is held.
func (sp *spool) free() []byte {
	if sp.n == len(sp.ring) {
		return nil
	}
	at := (sp.r + sp.n) % len(sp.ring)
	end := len(sp.ring)
	if at < sp.r {
		end = sp.r
	}
	return sp.ring[at:end]
}

// caughtUpWithFile ends writing to the file once the reader has read it
// and the ring to their ends. sp.mu is held.
func (sp *spool) caughtUpWithFile() {
	if sp.inFile && sp.fr == sp.fw && sp.n == 0 {
		sp.inFile = false
	}
}

// appendFile writes p at the end of the file, made at the first call.
// sp.mu is held, and released while the bytes go to the file: only the
// writer writes, and the reader reads only below fw.
func (sp *spool) appendFile(p []byte) (int, error) {
	f := sp.f
	if f == nil {
		var err error
		if f, err = tempFile(sp.dir); err != nil {
			return 0, err
		}
		sp.f = f
		if sp.files != nil {
			sp.files.Add(1)
		}
	}
	off := sp.fw
	sp.mu.Unlock()
	k, err := f.WriteAt(p, off)
	sp.mu.Lock()
	sp.fw += int64(k)
	if err != nil {
		err = fmt.Errorf("buffering a body: %w", err)
	}
	return k, err
}

// Write appends p.
func (sp *spool) Write(p []byte) (int, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.err != nil {
		return 0, sp.err
	}
	sp.makeRing(false)
	sp.caughtUpWithFile()
	written := 0
	if !sp.inFile {
		for written < len(p) {
			free := sp.free()
			if free == nil {
				break
			}
			k := copy(free, p[written:])
			sp.n += k
			written += k
		}
	}
	var err error
	if written < len(p) {
		sp.inFile = true
		var k int
		k, err = sp.appendFile(p[written:])
		written += k
	}
	sp.more.Broadcast()
	return written, err
}

// fill reads src to its end into the spool: straight into the ring while
// the client keeps up (no copy of the proxy's own), and through buf into
// the file while it is behind (waitForClient). It returns src's error,
// nil at its end, or errSpoolAborted once the reader gave up.
func (sp *spool) fill(src io.Reader, buf []byte) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.makeRing(true)
	for {
		if sp.err != nil {
			return sp.err
		}
		sp.caughtUpWithFile()
		if !sp.inFile {
			if free := sp.free(); free != nil {
				// drainTo reads only the ring's unread part.
				sp.mu.Unlock()
				k, err := src.Read(free)
				sp.mu.Lock()
				sp.n += k
				if k > 0 {
					sp.more.Broadcast()
				}
				if err != nil {
					return eofNil(err)
				}
				continue
			}
			if sp.waitForClient() {
				continue
			}
			sp.inFile = true
		}
		sp.mu.Unlock()
		k, err := src.Read(buf)
		sp.mu.Lock()
		if k > 0 && sp.err == nil {
			_, werr := sp.appendFile(buf[:k])
			sp.more.Broadcast()
			if werr != nil {
				return werr
			}
		}
		if err != nil {
			return eofNil(err)
		}
	}
}

// eofNil is err, or nil for io.EOF.
func eofNil(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

// waitForClient waits, the ring full, for drainTo to take some of it:
// for as long as it takes while drainTo is not writing (it is about to
// take data), and for spillAfter of a write under way. It reports false
// when that write took nothing in time: the client is behind. sp.mu is
// held.
func (sp *spool) waitForClient() bool {
	var deadline time.Time
	for sp.n == len(sp.ring) && sp.err == nil {
		if sp.writing {
			now := time.Now()
			switch {
			case deadline.IsZero():
				deadline = now.Add(sp.spillAfter)
				if sp.wake == nil {
					sp.wake = time.AfterFunc(sp.spillAfter, sp.wakeUp)
				} else {
					sp.wake.Reset(sp.spillAfter)
				}
			case !now.Before(deadline):
				return false
			}
		}
		sp.more.Wait()
	}
	if !deadline.IsZero() {
		sp.wake.Stop()
	}
	return true
}

// setWriting marks a write to the client under way, or over.
func (sp *spool) setWriting(on bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.writing = on
	sp.more.Broadcast()
}

// wakeUp ends a wait of waitForClient.
func (sp *spool) wakeUp() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.more.Broadcast()
}

// drainTo writes the spool to w as it grows, straight from the ring, until
// its end, and calls flush, when not nil, whenever w has caught up. It
// returns w's or flush's error, or the writer's.
func (sp *spool) drainTo(w io.Writer, flush func() error, buf []byte) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for {
		for sp.n == 0 && sp.fr == sp.fw && !sp.done && sp.err == nil {
			sp.more.Wait()
		}
		var p []byte
		fromRing := sp.n > 0
		switch {
		case fromRing:
			p = sp.ring[sp.r:min(len(sp.ring), sp.r+sp.n)]
		case sp.fr < sp.fw:
			f, off := sp.f, sp.fr
			p = buf[:min(int64(len(buf)), sp.fw-sp.fr)]
			sp.mu.Unlock()
			k, err := f.ReadAt(p, off)
			sp.mu.Lock()
			if k < len(p) {
				if err == nil || err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return fmt.Errorf("reading a buffered body back: %w", err)
			}
		default:
			return sp.err
		}
		// fill does not write to p: it is unread ring, or the file below fr.
		sp.writing = true
		sp.more.Broadcast()
		sp.mu.Unlock()
		_, err := w.Write(p)
		sp.mu.Lock()
		sp.writing = false
		if fromRing {
			sp.r = (sp.r + len(p)) % len(sp.ring)
			sp.n -= len(p)
		} else {
			sp.fr += int64(len(p))
		}
		sp.more.Broadcast()
		if err != nil {
			return err
		}
		if flush != nil && sp.n == 0 && sp.fr == sp.fw {
			sp.writing = true
			sp.mu.Unlock()
			err = flush()
			sp.mu.Lock()
			sp.writing = false
			if err != nil {
				return err
			}
		}
	}
}

// finish ends the body: err is the writer's error, nil at its end.
func (sp *spool) finish(err error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.done = true
	if sp.err == nil {
		sp.err = err
	}
	sp.more.Broadcast()
}

// abort makes the writer's next Write fail: the reader gave up.
func (sp *spool) abort() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.err == nil {
		sp.err = errSpoolAborted
	}
	sp.more.Broadcast()
}

// close releases the file, which was unlinked when it was made, and an
// answer's ring: neither fill nor drainTo may run any more.
func (sp *spool) close() {
	sp.mu.Lock()
	f := sp.f
	sp.f = nil
	if sp.pooled {
		ring := sp.ring[:cap(sp.ring)]
		ringPool.Put(&ring)
		sp.ring, sp.pooled = nil, false
	}
	if sp.wake != nil {
		sp.wake.Stop()
	}
	sp.mu.Unlock()
	if f != nil {
		_ = f.Close()
	}
}

// inMemory returns the whole body, unread, when it is all in the ring.
func (sp *spool) inMemory() ([]byte, bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.f != nil || sp.r != 0 {
		return nil, false
	}
	if sp.ring == nil {
		return []byte{}, true
	}
	return sp.ring[:sp.n], true
}

// spoolReader reads a spool from its start, waiting for what is still to
// be written.
type spoolReader struct{ sp *spool }

func (rd spoolReader) Read(p []byte) (int, error) {
	sp := rd.sp
	sp.mu.Lock()
	for sp.n == 0 && sp.fr == sp.fw && !sp.done && sp.err == nil {
		sp.more.Wait()
	}
	if sp.n > 0 {
		end := min(len(sp.ring), sp.r+sp.n)
		k := copy(p, sp.ring[sp.r:end])
		sp.r = (sp.r + k) % len(sp.ring)
		sp.n -= k
		sp.mu.Unlock()
		return k, nil
	}
	if sp.fr < sp.fw {
		f, off, avail := sp.f, sp.fr, sp.fw-sp.fr
		sp.mu.Unlock()
		if int64(len(p)) > avail {
			p = p[:avail]
		}
		k, err := f.ReadAt(p, off)
		sp.mu.Lock()
		sp.fr += int64(k)
		sp.mu.Unlock()
		if err == io.EOF && k > 0 {
			err = nil
		}
		return k, err
	}
	err := sp.err
	sp.mu.Unlock()
	if err == nil {
		err = io.EOF
	}
	return 0, err
}

// tempFile makes a temporary file in dir (made 0700 first) and unlinks it
// at once: it lives as long as it is open.
func tempFile(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("buffering a body: %w", err)
	}
	f, err := os.CreateTemp(dir, "body-")
	if err != nil {
		return nil, fmt.Errorf("buffering a body: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("buffering a body: %w", err)
	}
	return f, nil
}

// errBodyTooLarge ends a request body larger than its app's
// NGINX_CLIENT_MAX_BODY_SIZE.
var errBodyTooLarge = errors.New("request body too large")

// spoolRequest reads r's body whole into a spool before the app is called
// (nginx's proxy_request_buffering) and makes b send it from there, with
// a Content-Length (unless the client sent trailers, which go only with
// a chunked body). A client that leaves ClientBodyTimeout between two
// reads gets 408, one whose body is larger than the app's MaxBodySize
// 413; spoolRequest answers those itself and returns false. The caller
// closes the spool.
func (s *Server) spoolRequest(w http.ResponseWriter, r *http.Request, info *reqInfo, b *upstream.Body) (*spool, bool) {
	limit := info.route.MaxBodySize
	sp := newSpool(s.o.TempDir, r.ContentLength, &s.spoolFiles)
	rc := http.NewResponseController(w)
	timeout := s.o.ClientBodyTimeout
	var set time.Time // when the read deadline was last moved
	buf := s.bufs.Get()
	defer s.bufs.Put(buf)
	var total int64
	for {
		if now := time.Now(); now.Sub(set) >= time.Second {
			// Moved at most once a second: the bound is between two
			// reads, give or take that second.
			_ = rc.SetReadDeadline(now.Add(timeout))
			set = now
		}
		n, err := r.Body.Read(buf)
		if n > 0 {
			if total += int64(n); limit > 0 && total > limit {
				sp.close()
				tooLarge(w, info, limit)
				return nil, false
			}
			if _, werr := sp.Write(buf[:n]); werr != nil {
				sp.close()
				s.log.Error("buffering a request body", "app", info.route.App, "err", werr)
				info.err = werr
				page(w, http.StatusInternalServerError)
				return nil, false
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			sp.close()
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				info.err = fmt.Errorf("client sent no body byte for %v", timeout)
				w.Header().Set("Connection", "close")
				page(w, http.StatusRequestTimeout)
			} else {
				page(w, http.StatusBadRequest) // the client's body failed
			}
			return nil, false
		}
	}
	_ = rc.SetReadDeadline(time.Time{})
	sp.finish(nil)
	// The body is here whole: the app is not to be asked for "100
	// Continue" (the client has been, when the body was read).
	delete(r.Header, "Expect")
	b.Size = total
	if len(r.Trailer) > 0 {
		b.Size = -1 // trailers go only with a chunked body
	}
	if mem, ok := sp.inMemory(); ok {
		b.Buf = mem
	} else {
		b.RC = io.NopCloser(spoolReader{sp: sp})
	}
	return sp, true
}

// tooLarge answers 413 for a request body beyond limit, naming the key
// that raises it.
func tooLarge(w http.ResponseWriter, info *reqInfo, limit int64) {
	info.err = errBodyTooLarge
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Connection", "close")
	h.Del("Content-Length")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	fmt.Fprintf(w, "<!doctype html>\n<html><head><title>413 Request Entity Too Large</title></head><body><h1>413 Request Entity Too Large</h1>"+
		"<p>The request body is larger than this app accepts (%s bytes). The app's NGINX_CLIENT_MAX_BODY_SIZE raises the bound.</p><hr><p>piku</p></body></html>\n", formatSize(limit))
}

// formatSize writes n as nginx would be told it: 10m, 512k or bytes.
func formatSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dm", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dk", n>>10)
	}
	return fmt.Sprint(n)
}

// buffered reports whether an answer with header h is read from the
// backend ahead of the client (nginx's proxy_buffering): not when the app
// turned it off, for an event stream, when the backend said
// "X-Accel-Buffering: no" (as nginx honours it), or when its body is here
// whole already (whole). The X-Accel-Buffering field is for the proxy
// only: it is taken out of h, as nginx hides it.
func buffered(whole bool, h http.Header, rt *route) bool {
	if v, ok := h["X-Accel-Buffering"]; ok {
		delete(h, "X-Accel-Buffering") // for the proxy only, as nginx hides it
		if len(v) > 0 && strings.EqualFold(strings.TrimSpace(v[0]), "no") {
			return false
		}
	}
	return !rt.StreamResponses && !whole && !isEventStream(h)
}

// copyBuffered copies the response body of x to w through a spool: a
// goroutine reads the backend's answer into it as fast as the backend
// sends it, and ends the exchange when it is read whole, while this one
// writes it to the client as fast as the client reads it. flush, when
// not nil, is called whenever the client has caught up. first, when not
// nil, writes what must reach the client before the spool's first byte
// (a relay through a pipe handed over: splice.go), while the goroutine
// already reads the answer.
func (s *Server) copyBuffered(w http.ResponseWriter, x *upstream.Exchange, flush func() error, first func() error) error {
	sp := newSpool(s.o.TempDir, x.Length(), &s.spoolFiles)
	defer sp.close()
	if d := s.spillAfter.Load(); d > 0 {
		sp.spillAfter = time.Duration(d)
	}
	done := make(chan error, 1)
	go func() {
		buf := s.bufs.Get()
		defer s.bufs.Put(buf)
		var err error
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic buffering a response: %v", p)
			}
			sp.finish(err)
			done <- err
		}()
		if err = sp.fill(x, buf); err == nil && !x.BodyLeft() {
			x.Finish() // the backend is done with: its connection goes back
		}
	}()
	var err error
	if first != nil {
		// What must reach the client before the spool's first byte, as
		// the app reads into the spool meanwhile: a write to the client
		// under way, as drainTo's, that fill waits for only spillAfter.
		sp.setWriting(true)
		err = first()
		sp.setWriting(false)
	}
	buf := s.bufs.Get()
	defer s.bufs.Put(buf)
	if err == nil {
		err = sp.drainTo(w, flush, buf)
	}
	if err != nil {
		// The client or the backend failed: the reader stops.
		x.Cancel()
		sp.abort()
	}
	<-done
	return err
}
