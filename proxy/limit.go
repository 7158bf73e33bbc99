package proxy

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/piku/piku/proxy/internal/h1"
)

// clientListener hands out the proxy's client connections. Each is a
// clientConn, whose writes get the send timeout. With a budget, the
// listeners sharing it have at most its size of connections open: Accept
// waits while they are all taken, and clients beyond wait in the kernel's
// backlog. It keeps the proxy from taking the file descriptors the
// supervisor needs to start and restart processes, and bounds the memory
// connections hold.
type clientListener struct {
	net.Listener
	budget      *connBudget   // nil: no bound
	sendTimeout time.Duration // 0: none
	done        chan struct{}
	closeOnce   sync.Once
}

func newClientListener(l net.Listener, budget *connBudget, sendTimeout time.Duration) *clientListener {
	return &clientListener{Listener: l, budget: budget, sendTimeout: sendTimeout, done: make(chan struct{})}
}

func (l *clientListener) Accept() (net.Conn, error) {
	if l.budget != nil && !l.budget.take(l.done) {
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		if l.budget != nil {
			l.budget.release()
		}
		return nil, err
	}
	cc := &clientConn{Conn: c, sendTimeout: l.sendTimeout}
	if l.budget != nil {
		cc.release = l.budget.release
	}
	return cc, nil
}

func (l *clientListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// connBudget is the bound on client connections open at once, over all
// listeners. When it is nearly taken (95 %), keep-alive is turned off on
// every server: idle keep-alive connections are closed and busy ones close
// after their response, as net/http's SetKeepAlivesEnabled(false) does,
// so that clients waiting in the backlog get their turn; once a tenth of
// it is free again, keep-alive is turned back on.
type connBudget struct {
	slots     chan struct{}
	high, low int           // pressure from high connections on, until low
	pressure  atomic.Bool   // keep-alive is off
	onPress   func(on bool) // turns keep-alive off (on) and on again
}

func newConnBudget(n int, onPress func(on bool)) *connBudget {
	return &connBudget{slots: make(chan struct{}, n), high: n - n/20, low: n - n/10 - 1, onPress: onPress}
}

// take waits for a free slot, or for done to be closed (false then).
func (b *connBudget) take(done <-chan struct{}) bool {
	select {
	case b.slots <- struct{}{}:
	default:
		b.press(true)
		select {
		case b.slots <- struct{}{}:
		case <-done:
			return false
		}
	}
	if len(b.slots) >= b.high {
		b.press(true)
	}
	return true
}

// release gives a slot back.
func (b *connBudget) release() {
	<-b.slots
	if b.pressure.Load() && len(b.slots) <= b.low {
		b.press(false)
	}
}

func (b *connBudget) press(on bool) {
	if b.pressure.CompareAndSwap(!on, on) {
		b.onPress(on)
	}
}

// clientConn is a client connection. Before each write it moves the
// write deadline to sendTimeout from now (unless the one set is less than
// a second earlier, see h1.KeepDeadline): a client that stops reading is
// cut once a write made no progress for sendTimeout, as nginx's
// send_timeout does, whatever serves the connection (piku's HTTP/1.1
// server, net/http's, TLS and HTTP/2 above it, a WebSocket tunnel). When
// closed it gives its slot back.
type clientConn struct {
	net.Conn
	sendTimeout time.Duration
	wdeadline   atomic.Int64     // the write deadline set, UnixNano; 0 = none
	now         func() time.Time // nil: time.Now (tests set a clock)
	once        sync.Once
	release     func() // nil: no slot
}

// NetConn returns the connection c wraps, as tls.Conn.NetConn does.
func (c *clientConn) NetConn() net.Conn { return c.Conn }

// SyscallConn returns the raw connection of the connection c wraps, for
// the HTTP/1.1 server's wait for the next request (h1's sendAndWait).
func (c *clientConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// CloseWrite shuts down the writing side, if the connection has one.
func (c *clientConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *clientConn) Write(p []byte) (int, error) {
	c.moveSendDeadline()
	return c.Conn.Write(p)
}

// WriteBuffers writes v with one system call where the connection can
// (writev, for TCP), bounded by the send timeout as Write is
// (h1.BuffersWriter).
func (c *clientConn) WriteBuffers(v *net.Buffers) (int64, error) {
	c.moveSendDeadline()
	return v.WriteTo(c.Conn)
}

// moveSendDeadline moves the write deadline to the send timeout from now,
// unless the one set may stay (h1.KeepDeadline).
func (c *clientConn) moveSendDeadline() {
	if c.sendTimeout <= 0 {
		return
	}
	var set time.Time
	if ns := c.wdeadline.Load(); ns != 0 {
		set = time.Unix(0, ns)
	}
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	if t, keep := h1.KeepDeadline(set, now(), c.sendTimeout); !keep {
		_ = c.Conn.SetWriteDeadline(t)
		c.wdeadline.Store(t.UnixNano())
	}
}

// SetWriteDeadline sets the write deadline until the next write moves it.
func (c *clientConn) SetWriteDeadline(t time.Time) error {
	c.noteDeadline(t)
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets the read and write deadlines; the next write moves the
// write deadline.
func (c *clientConn) SetDeadline(t time.Time) error {
	c.noteDeadline(t)
	return c.Conn.SetDeadline(t)
}

func (c *clientConn) noteDeadline(t time.Time) {
	if t.IsZero() {
		c.wdeadline.Store(0)
	} else {
		c.wdeadline.Store(t.UnixNano())
	}
}

func (c *clientConn) Close() error {
	err := c.Conn.Close()
	if c.release != nil {
		c.once.Do(c.release)
	}
	return err
}

// streamSendTimeout gives each HTTP/2 response the send timeout of its
// own: a stream the client stopped reading waits on HTTP/2's flow control,
// not on a write to the connection, so the connection's deadline does not
// see it. The stream's write deadline moves before each write, and the
// stream is reset once one made no progress for the timeout.
func (s *Server) streamSendTimeout(h http.Handler) http.Handler {
	d := s.o.SendTimeout
	if d <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			h.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(&streamDeadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: d}, r)
	})
}

// streamDeadlineWriter moves its stream's write deadline before each write.
type streamDeadlineWriter struct {
	http.ResponseWriter
	rc  *http.ResponseController
	d   time.Duration
	set time.Time
}

func (w *streamDeadlineWriter) refresh() {
	if t, keep := h1.KeepDeadline(w.set, time.Now(), w.d); !keep && w.rc.SetWriteDeadline(t) == nil {
		w.set = t
	}
}

func (w *streamDeadlineWriter) Write(p []byte) (int, error) {
	w.refresh()
	return w.ResponseWriter.Write(p)
}

// Flush sends what is buffered (http.Flusher).
func (w *streamDeadlineWriter) Flush() {
	w.refresh()
	_ = w.rc.Flush()
}

// Unwrap returns the ResponseWriter w wraps, for http.ResponseController.
func (w *streamDeadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var (
	_ net.Listener = (*clientListener)(nil)
	_ net.Conn     = (*clientConn)(nil)
	_ http.Flusher = (*streamDeadlineWriter)(nil)
)
