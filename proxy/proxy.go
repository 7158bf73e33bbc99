// Package proxy is piku's HTTP front: it routes requests by Host to apps,
// balances them over each app's web instances, serves static paths,
// caches responses, applies the Cloudflare ACL, redirects to HTTPS and
// writes access logs. It replaces the nginx configuration piku generated
// from an app's NGINX_* keys.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/piku/piku/proxy/internal/h1"
	"github.com/piku/piku/proxy/internal/splice"
	"github.com/piku/piku/proxy/internal/upstream"
)

// Options configure a Server.
type Options struct {
	// Logger receives the proxy's own messages; nil discards them.
	Logger *slog.Logger
	// HTTPAddr and HTTPSAddr are the listen addresses; "" turns a
	// listener off.
	HTTPAddr, HTTPSAddr string
	// TLSConfig serves HTTPS (with HTTP/2); nil turns HTTPS off.
	TLSConfig *tls.Config
	// HTTPWrap wraps the plain-HTTP handler, to answer ACME HTTP-01
	// challenges; nil = none.
	HTTPWrap func(http.Handler) http.Handler
	// ResponseHeaderTimeout is how long a backend may take to start its
	// response before the client gets a 504; default 60s.
	ResponseHeaderTimeout time.Duration
	// DialTimeout bounds connecting to a backend; default 5s.
	DialTimeout time.Duration
	// DownFor is how long a backend refusing connections is skipped;
	// default 2s.
	DownFor time.Duration
	// Listen opens the listening socket for an address (HTTPAddr,
	// HTTPSAddr); default net.Listen("tcp", addr). A daemon that replaces
	// itself in place passes its sockets on through it.
	Listen func(addr string) (net.Listener, error)
	// ShutdownTimeout bounds the graceful shutdown at the end of Run;
	// default 10s.
	ShutdownTimeout time.Duration
	// ReadHeaderTimeout is how long a client may take to send a request's
	// headers (slow-loris clients are cut off after it); default 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle that long; default
	// 120s.
	IdleTimeout time.Duration
	// SendTimeout cuts a client connection when a write to it made no
	// progress for that long (the client stopped reading), as nginx's
	// send_timeout: the time between two writes, not the whole response.
	// Default 60s (DefaultSendTimeout); negative = none.
	SendTimeout time.Duration
	// MaxHeaderBytes bounds a request's header section, its request line
	// and fields together (431 beyond it); each line may take a quarter
	// of it, and at least 8 KiB (414 for a longer request line, 400 for a
	// longer field), as nginx's large_client_header_buffers 4 8k do.
	// Default 32 KiB (headerlimits.go).
	MaxHeaderBytes int
	// MaxHeaderFields bounds the fields of a request's header (431
	// beyond it); default 100, gunicorn's limit_request_fields.
	MaxHeaderFields int
	// Observer is told about every request and connection, for metrics;
	// nil = none.
	Observer Observer
	// MaxConns bounds the client connections open at once, over all
	// listeners; beyond it new clients wait in the kernel's backlog until
	// one closes, and from 95 % of it on keep-alive is off (idle
	// connections are closed first) until a tenth is free (limit.go).
	// 0 = no bound. The daemon sets it from its file descriptor limit and
	// its memory, so the proxy cannot starve the supervisor nor the apps.
	MaxConns int
	// Wake, when set, is called with an app's name when a request starts
	// waiting for the app (held, with no backend: Server.Hold), from the
	// request's goroutine: the daemon starts an app asleep. It must not
	// block.
	Wake func(app string)
	// TempDir holds the temporary files of request and response bodies
	// too large to buffer in memory (spool.go); it is made 0700 when
	// first needed, and its files are unlinked as soon as they are
	// created. "" = os.TempDir(). The daemon sets it under PIKU_ROOT.
	TempDir string
	// ClientBodyTimeout is how long a client may leave a request body
	// that is being read before the app is called without a byte
	// (nginx's client_body_timeout); 408 after it. Default 60s.
	ClientBodyTimeout time.Duration
	// NetHTTP1 serves plain HTTP with net/http's server instead of piku's
	// own HTTP/1.1 server loop (h1server.go); default false. It exists to
	// compare the two (internal/bench/proxyload).
	NetHTTP1 bool
}

// DefaultSendTimeout is Options.SendTimeout unless set: nginx's
// send_timeout.
const DefaultSendTimeout = 60 * time.Second

// Server is the reverse proxy. Its route table can be changed at any time
// with SetRoute and RemoveRoute, while Run serves.
type Server struct {
	o       Options
	up      upstream.Client // sends requests to backends
	log     *slog.Logger    // summarises repeated warnings (logsummary.go)
	summary *summaryHandler // log's handler
	bufs    bufferPool      // response body copy buffers
	// spoolFiles counts the bodies buffered (spool.go) that went to a
	// temporary file.
	spoolFiles atomic.Int64
	// spillAfter, in nanoseconds, replaces the const spillAfter when set
	// (tests).
	spillAfter atomic.Int64
	// pipes are lent to answers relayed through a pipe (splice.go);
	// splicedAnswers counts those.
	pipes          splice.Pool
	splicedAnswers atomic.Int64
	zpools         encoderPools // gzip and zstd encoders (compress.go)

	table      atomic.Pointer[table]
	cloudflare atomic.Pointer[[]*net.IPNet] // nil: the built-in list

	mu         sync.Mutex          // serialises table changes; guards the maps below
	routes     map[string]Route    // the settings, by app; Backends unused
	backendsOf map[string][]string // the backend addresses, by app
	backends   map[string]*backend // by address; kept so Drain sees old ones
	caches     map[string]*cache   // by app
	logs       map[string]*accessLog
	holds      map[string]*holdState // the held apps (hold.go)
	activity   map[string]*activity  // last request, by app with Route.TrackActivity (activity.go)

	streams streams     // long-lived answers Drain ends (streams.go)
	budget  *connBudget // nil without Options.MaxConns; set before ready closes

	idleMu sync.Mutex
	idle   chan struct{} // closed and replaced when a backend's in-flight count reaches 0

	ready   chan struct{}
	accept  *acceptGate   // closed once the listeners are (accepting.go)
	closing chan struct{} // closed when Run starts shutting down: held requests give up
	addrs   [2]string
	self    map[string]bool // host:port of every listener; set before ready closes
}

// New returns a Server; Run starts it.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.ResponseHeaderTimeout <= 0 {
		o.ResponseHeaderTimeout = 60 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.DownFor <= 0 {
		o.DownFor = 2 * time.Second
	}
	if o.Listen == nil {
		o.Listen = func(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = 10 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 120 * time.Second
	}
	if o.ClientBodyTimeout <= 0 {
		o.ClientBodyTimeout = 60 * time.Second
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.SendTimeout == 0 {
		o.SendTimeout = DefaultSendTimeout
	} else if o.SendTimeout < 0 {
		o.SendTimeout = 0
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxHeaderFields <= 0 {
		o.MaxHeaderFields = DefaultMaxHeaderFields
	}
	summary := newSummaryHandler(o.Logger.Handler(), logSummaryInterval, time.Now)
	s := &Server{
		o:          o,
		up:         upstream.Client{DialTimeout: o.DialTimeout, ResponseHeaderTimeout: o.ResponseHeaderTimeout},
		log:        slog.New(summary),
		summary:    summary,
		routes:     map[string]Route{},
		backendsOf: map[string][]string{},
		backends:   map[string]*backend{},
		caches:     map[string]*cache{},
		logs:       map[string]*accessLog{},
		holds:      map[string]*holdState{},
		activity:   map[string]*activity{},
		idle:       make(chan struct{}),
		ready:      make(chan struct{}),
		accept:     newAcceptGate(),
		closing:    make(chan struct{}),
		pipes:      splice.Pool{Max: maxPipes},
	}
	s.table.Store(&table{exact: map[string]*route{}, apps: map[string]*route{}})
	return s
}

// Ready is closed once Run listens; Addrs then returns the bound addresses.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addrs returns the addresses the HTTP and HTTPS listeners are bound to
// ("" when off), valid once Ready is closed.
func (s *Server) Addrs() (httpAddr, httpsAddr string) { return s.addrs[0], s.addrs[1] }

// Run listens and serves until ctx ends, then shuts down gracefully:
// requests in flight get up to Options.ShutdownTimeout to finish and
// upgraded connections (WebSockets) are closed.
func (s *Server) Run(ctx context.Context) error {
	defer s.accept.shut()
	// Summaries of repeated warnings are written every interval, and
	// the last ones when Run returns.
	sumCtx, stopSummary := context.WithCancel(context.Background())
	sumDone := make(chan struct{})
	go func() {
		defer close(sumDone)
		s.summary.run(sumCtx)
	}()
	defer func() {
		stopSummary()
		<-sumDone
	}()
	defer s.pipes.Close()
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	type listener struct {
		srv httpServer
		ln  net.Listener
		tls bool
	}
	var ls []listener
	closeAll := func() {
		for _, l := range ls {
			l.ln.Close()
		}
	}
	var connState func(net.Conn, http.ConnState)
	if s.o.Observer != nil {
		connState = s.connState
	}
	newServer := func(h http.Handler, maxHeaderBytes int) *http.Server {
		return &http.Server{
			ConnState:         connState,
			Handler:           s.headerLimits(s.streamSendTimeout(h)),
			ReadHeaderTimeout: s.o.ReadHeaderTimeout,
			IdleTimeout:       s.o.IdleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			BaseContext:       func(net.Listener) context.Context { return base },
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
	}
	var budget *connBudget
	if s.o.MaxConns > 0 {
		budget = newConnBudget(s.o.MaxConns, func(on bool) {
			// Closing idle connections may release slots and end the
			// pressure from within: ls is read, never changed, by then.
			if on {
				s.log.Warn("client connections near their limit: keep-alive off until a tenth is free", "limit", s.o.MaxConns)
				if bo, ok := s.o.Observer.(BudgetObserver); ok {
					bo.ConnBudgetFull()
				}
			}
			for _, l := range ls {
				l.srv.SetKeepAlivesEnabled(!on)
			}
		})
		s.budget = budget
	}
	limit := func(ln net.Listener) net.Listener {
		return newClientListener(s.accept.wrap(ln), budget, s.o.SendTimeout)
	}
	if s.o.HTTPAddr != "" {
		ln, err := s.o.Listen(s.o.HTTPAddr)
		if err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
		ln = limit(ln)
		h := s.trackStreams(s.handler(false, portOf(ln.Addr().String())))
		if s.o.HTTPWrap != nil {
			h = s.o.HTTPWrap(h)
		}
		var srv httpServer = h1.NewServer(h, h1Config(s.o), base, connState, s.log)
		if s.o.NetHTTP1 {
			srv = newServer(h, netHTTPMaxHeaderBytes(s.o.MaxHeaderBytes))
		}
		ls = append(ls, listener{srv, ln, false})
		s.addrs[0] = ln.Addr().String()
	}
	if s.o.HTTPSAddr != "" && s.o.TLSConfig == nil {
		s.log.Warn("HTTPS listener off: no TLS configuration", "addr", s.o.HTTPSAddr)
	}
	if s.o.HTTPSAddr != "" && s.o.TLSConfig != nil {
		ln, err := s.o.Listen(s.o.HTTPSAddr)
		if err != nil {
			closeAll()
			return fmt.Errorf("proxy: %w", err)
		}
		ln = limit(ln)
		srv := newServer(s.trackStreams(s.handler(true, portOf(ln.Addr().String()))), h2MaxHeaderBytes(s.o.MaxHeaderBytes, s.o.MaxHeaderFields))
		cfg := s.o.TLSConfig.Clone()
		for _, p := range []string{"h2", "http/1.1"} {
			if !slices.Contains(cfg.NextProtos, p) {
				cfg.NextProtos = append(cfg.NextProtos, p)
			}
		}
		srv.TLSConfig = cfg
		ls = append(ls, listener{tlsServer{srv}, ln, true})
		s.addrs[1] = ln.Addr().String()
	}
	s.self = map[string]bool{}
	for _, l := range ls {
		for a := range ownAddrs(l.ln.Addr().String()) {
			s.self[a] = true
		}
	}
	close(s.ready)
	for _, l := range ls {
		s.log.Info("listening", "addr", l.ln.Addr().String(), "tls", l.tls, "http1", http1Name(l.tls, s.o.NetHTTP1))
	}
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() {
			errc <- l.srv.Serve(l.ln)
		}()
	}
	var err error
	pending := len(ls)
	select {
	case <-ctx.Done():
	case e := <-errc:
		pending--
		err = fmt.Errorf("proxy: %w", e)
	}
	close(s.closing) // held requests get their 503 now, not at their hold time
	sctx, cancel := context.WithTimeout(context.Background(), s.o.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() {
			if e := l.srv.Shutdown(sctx); e != nil {
				l.srv.Close()
			}
		})
	}
	wg.Wait()
	cancelBase() // ends upgraded connections, which Shutdown leaves alone
	for ; pending > 0; pending-- {
		if e := <-errc; err == nil && !errors.Is(e, http.ErrServerClosed) {
			err = fmt.Errorf("proxy: %w", e)
		}
	}
	s.mu.Lock()
	for _, b := range s.backends {
		b.pool.CloseIdle()
	}
	for p, l := range s.logs {
		l.Close()
		delete(s.logs, p)
	}
	s.mu.Unlock()
	return err
}

// httpServer is what Run needs of a server: net/http's (for HTTPS and
// HTTP/2) or piku's own HTTP/1.1 one.
type httpServer interface {
	Serve(net.Listener) error
	SetKeepAlivesEnabled(bool)
	Shutdown(context.Context) error
	Close() error
}

// tlsServer serves TLS, with HTTP/2, through net/http.
type tlsServer struct{ *http.Server }

func (t tlsServer) Serve(ln net.Listener) error { return t.ServeTLS(ln, "", "") }

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// bufferPool recycles the 32 KiB buffers response bodies are copied with.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

var (
	_ httpServer = (*h1.Server)(nil)
	_ httpServer = tlsServer{}
	_ httpServer = (*http.Server)(nil)
)

// http1Name names what serves a listener's HTTP/1.1, for the log.
func http1Name(tls, netHTTP1 bool) string {
	if tls || netHTTP1 {
		return "net/http"
	}
	return "piku"
}
