package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/piku/piku/internal/layout"
)

// ErrUnknownApp is wrapped by Backend errors about apps that do not exist;
// the server answers them with 404.
var ErrUnknownApp = errors.New("unknown app")

// Info describes the running daemon.
type Info struct {
	PID     int       `json:"pid"`
	Version string    `json:"version"`
	Root    string    `json:"root"`
	Started time.Time `json:"started"`
}

// Server serves the control API over a Backend.
type Server struct {
	backend Backend
	info    Info
	log     *slog.Logger
	mux     *http.ServeMux
	check   CallerCheck   // see RefuseCallers
	closing chan struct{} // closed when Serve's context ends: pauses end
}

// NewServer returns a server for backend. info is what /v1/ping reports.
func NewServer(backend Backend, info Info, log *slog.Logger) *Server {
	s := &Server{backend: backend, info: info, log: log, mux: http.NewServeMux(), closing: make(chan struct{})}
	s.mux.HandleFunc("GET /v1/ping", s.ping)
	s.mux.HandleFunc("GET /v1/apps", s.apps)
	s.mux.HandleFunc("GET /v1/apps/{app}", s.status)
	s.mux.HandleFunc("POST /v1/apps/{app}/deploy", s.deploy)
	s.mux.HandleFunc("POST /v1/apps/{app}/stop", s.stop)
	s.mux.HandleFunc("DELETE /v1/apps/{app}", s.forget)
	s.mux.HandleFunc("POST /v1/apps/{app}/pause", s.pause)
	return s
}

// Handle serves pattern (a http.ServeMux pattern) with h beside the API,
// as the daemon serves GET /metrics.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// HandleRestart serves POST /v1/restart with restart, which checks that
// the daemon may replace itself in place (`piku service restart`) and, if
// so, starts doing it once the answer is sent; its error is the answer.
func (s *Server) HandleRestart(restart func(context.Context) error) {
	s.mux.HandleFunc("POST /v1/restart", func(w http.ResponseWriter, r *http.Request) {
		if err := restart(r.Context()); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, Event{Done: true})
	})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Serve serves the API on l until ctx ends, then shuts down, giving
// in-flight requests (a rollout, say) up to grace to finish.
func (s *Server) Serve(ctx context.Context, l net.Listener, grace time.Duration) error {
	hs := &http.Server{Handler: s.guard(s), ConnContext: withPeer, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("control API: %w", err)
	case <-ctx.Done():
	}
	close(s.closing)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
	}
	<-errc
	return nil
}

// Listen opens the control socket at path with mode 0600. A socket left by
// a daemon that died is removed; one that still answers means another
// daemon is running, which is an error.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("another piku daemon is already running (it answers on %s)", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale control socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return l, nil
}

func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.info)
}

func (s *Server) apps(w http.ResponseWriter, r *http.Request) {
	apps, err := s.backend.Apps(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if apps == nil {
		apps = []AppStatus{}
	}
	writeJSON(w, http.StatusOK, apps)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	app, ok := appName(w, r)
	if !ok {
		return
	}
	st, err := s.backend.Status(r.Context(), app)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) deploy(w http.ResponseWriter, r *http.Request) {
	app, ok := appName(w, r)
	if !ok {
		return
	}
	var req DeployRequest
	if r.ContentLength != 0 {
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			writeJSON(w, http.StatusBadRequest, Event{Done: true, Error: "bad deploy request: " + err.Error()})
			return
		}
	}
	s.stream(w, r, func(ctx context.Context, out io.Writer) error {
		return s.backend.Deploy(ctx, app, req, out)
	})
}

func (s *Server) stop(w http.ResponseWriter, r *http.Request) {
	app, ok := appName(w, r)
	if !ok {
		return
	}
	s.stream(w, r, func(ctx context.Context, out io.Writer) error {
		return s.backend.Stop(ctx, app, out)
	})
}

func (s *Server) forget(w http.ResponseWriter, r *http.Request) {
	app, ok := appName(w, r)
	if !ok {
		return
	}
	if err := s.backend.Forget(context.WithoutCancel(r.Context()), app); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Event{Done: true})
}

// pause holds the app's requests for as long as the client keeps the
// request open (or until the server stops): a client that dies cannot
// leave an app paused. The first event says the pause is on.
func (s *Server) pause(w http.ResponseWriter, r *http.Request) {
	app, ok := appName(w, r)
	if !ok {
		return
	}
	resume, err := s.backend.Pause(r.Context(), app)
	if err != nil {
		writeError(w, err)
		return
	}
	defer resume()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	newEventWriter(w).send(Event{Msg: "paused"})
	select {
	case <-r.Context().Done():
	case <-s.closing:
	}
}

// stream runs op, sending what it writes as Msg events and its result as
// the final event. op runs to the end even when the client goes away: a
// rollout cut off halfway would leave the app worse off than either version.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, op func(context.Context, io.Writer) error) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	ew := newEventWriter(w)
	err := op(context.WithoutCancel(r.Context()), ew)
	ew.flushPartial()
	final := Event{Done: true}
	if err != nil {
		final.Error, final.Code = err.Error(), errorCode(err)
		s.log.Warn("control operation failed", "path", r.URL.Path, "err", err)
	}
	ew.send(final)
}

func appName(w http.ResponseWriter, r *http.Request) (string, bool) {
	app := r.PathValue("app")
	if err := layout.ValidateApp(app); err != nil {
		writeJSON(w, http.StatusBadRequest, Event{Done: true, Error: err.Error()})
		return "", false
	}
	return app, true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	if errors.Is(err, ErrUnknownApp) {
		code = http.StatusNotFound
	}
	writeJSON(w, code, Event{Done: true, Error: err.Error(), Code: errorCode(err)})
}

// eventWriter turns written text into one Msg event per line. It is safe
// for concurrent use; a failed write to the client (gone away) is ignored
// so the operation itself carries on.
type eventWriter struct {
	mu      sync.Mutex
	w       io.Writer
	enc     *json.Encoder
	flusher http.Flusher
	partial []byte
}

func newEventWriter(w http.ResponseWriter) *eventWriter {
	f, _ := w.(http.Flusher)
	return &eventWriter{w: w, enc: json.NewEncoder(w), flusher: f}
}

func (e *eventWriter) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := len(p)
	e.partial = append(e.partial, p...)
	for {
		i := bytes.IndexByte(e.partial, '\n')
		if i < 0 {
			break
		}
		e.sendLocked(Event{Msg: string(e.partial[:i])})
		e.partial = e.partial[i+1:]
	}
	return n, nil
}

// Progress sends msg as a transient progress event.
func (e *eventWriter) Progress(msg string) {
	e.send(Event{Msg: msg, Progress: true})
}

func (e *eventWriter) flushPartial() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.partial) > 0 {
		e.sendLocked(Event{Msg: string(e.partial)})
		e.partial = nil
	}
}

func (e *eventWriter) send(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sendLocked(ev)
}

func (e *eventWriter) sendLocked(ev Event) {
	_ = e.enc.Encode(ev)
	if e.flusher != nil {
		e.flusher.Flush()
	}
}

var _ ProgressWriter = (*eventWriter)(nil)
