package proxy

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/piku/piku/proxy/internal/h1"
)

// accessLog writes one line per request in the combined log format
// followed by the request's duration in seconds, like nginx's
// `$request_time`, to a file rotated at 50 MB with 5 old files kept. A
// request that waited in the hold queue (its app waking from its sleep,
// starting, or paused) ends with `held=1.234s`: how long it waited, the
// cold start it saw.
//
// Lines are buffered, as nginx's `access_log ... buffer=64k flush=1s`:
// the buffer is written out when it holds accessLogBuffer bytes, at most
// accessLogFlush after its first line, and by Close (the proxy closes its
// logs when it stops and when no route uses one any more), so a clean stop
// loses nothing. One write system call then carries hundreds of lines.
type accessLog struct {
	lj    *lumberjack.Logger
	every time.Duration // accessLogFlush; tests change it

	mu    sync.Mutex
	buf   []byte
	timer *time.Timer // flushes buf; armed while buf holds lines
	armed bool
	// closed is set by Close: no route uses the log any more, and the
	// line of a request that was still running goes straight to the
	// file, which is closed again.
	closed bool
}

const (
	// accessLogBuffer is the size at which buffered lines are written.
	accessLogBuffer = 64 << 10
	// accessLogFlush is the longest a line waits in the buffer.
	accessLogFlush = time.Second
)

func newAccessLog(path string) *accessLog {
	return &accessLog{lj: &lumberjack.Logger{Filename: path, MaxSize: 50, MaxBackups: 5}, every: accessLogFlush}
}

// Close writes what is buffered and closes the file; a later write (a
// request that was still running) opens it, writes its line and closes
// it again.
func (l *accessLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
	}
	l.armed = false
	l.closed = true
	err := l.flushLocked()
	if cerr := l.lj.Close(); err == nil {
		err = cerr
	}
	return err
}

// flushLocked writes the buffer out; l.mu is held. A failed write drops
// the lines (lumberjack has said why on its own file's behalf); the
// buffer must not grow without bound.
func (l *accessLog) flushLocked() error {
	if len(l.buf) == 0 {
		return nil
	}
	_, err := l.lj.Write(l.buf)
	if cap(l.buf) > 2*accessLogBuffer {
		l.buf = nil // one huge line is not kept for ever
	} else {
		l.buf = l.buf[:0]
	}
	return err
}

// timedFlush runs on l.timer.
func (l *accessLog) timedFlush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.armed = false
	l.flushLocked()
}

func (l *accessLog) write(r *http.Request, lw *logWriter, info *reqInfo, d time.Duration) {
	status := responseStatus(r, lw)
	// The line is made outside the lock, on the stack when it fits.
	var line [512]byte
	b := line[:0]
	b = append(b, info.client...)
	b = append(b, " - "...)
	if u, _, ok := r.BasicAuth(); ok && u != "" {
		b = appendQuoted(b, u)
	} else {
		b = append(b, '-')
	}
	b = append(b, " ["...)
	b = info.start.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = appendQuoted(b, r.Method)
	b = append(b, ' ')
	b = appendQuoted(b, r.RequestURI)
	b = append(b, ' ')
	b = appendQuoted(b, r.Proto)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, lw.bytes, 10)
	b = append(b, " \""...)
	b = appendQuotedOrDash(b, r.Referer())
	b = append(b, "\" \""...)
	b = appendQuotedOrDash(b, r.UserAgent())
	b = append(b, "\" "...)
	b = strconv.AppendFloat(b, d.Seconds(), 'f', 3, 64)
	if info.heldFor > 0 {
		b = append(b, " held="...)
		b = strconv.AppendFloat(b, info.heldFor.Seconds(), 'f', 3, 64)
		b = append(b, 's')
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf == nil {
		l.buf = make([]byte, 0, accessLogBuffer+1024)
	}
	l.buf = append(l.buf, b...)
	switch {
	case l.closed:
		l.flushLocked()
		l.lj.Close()
	case len(l.buf) >= accessLogBuffer:
		l.flushLocked()
	case !l.armed:
		l.armed = true
		if l.timer == nil {
			l.timer = time.AfterFunc(l.every, l.timedFlush)
		} else {
			l.timer.Reset(l.every)
		}
	}
}

// responseStatus is the status lw saw go out: 101 for an upgraded
// connection (whose 101 the logWriter does not see), 200 when the handler
// wrote nothing.
func responseStatus(r *http.Request, lw *logWriter) int {
	if lw.status != 0 {
		return lw.status
	}
	if r.Header.Get("Upgrade") != "" {
		return http.StatusSwitchingProtocols
	}
	return http.StatusOK
}

func appendQuotedOrDash(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return appendQuoted(b, s)
}

// appendQuoted appends s with quotes, backslashes and control bytes
// escaped as \xHH, as nginx does.
func appendQuoted(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c == 0x7f {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return b
}

// logWriter records the status and body bytes of a response.
type logWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *logWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *logWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// WriteRaw passes a body relayed through a pipe on (h1.RawWriter),
// counting its bytes.
func (w *logWriter) WriteRaw(n int64, send func(net.Conn) (int64, error)) (bool, int64, error) {
	rw, ok := w.ResponseWriter.(h1.RawWriter)
	if !ok {
		return false, 0, nil
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	handled, k, err := rw.WriteRaw(n, send)
	w.bytes += k
	return handled, k, err
}
