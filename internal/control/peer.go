package control

import (
	"context"
	"net"
	"net/http"
)

// CallerCheck decides whether the process on the other end of a control
// connection may use the API: it returns an error saying why not. pid and
// uid are the peer's credentials, as the kernel gave them when it
// connected.
type CallerCheck func(pid, uid int) error

// RefuseCallers makes the server ask check about the peer of every request
// before serving it; a caller it refuses gets 403 with check's error. The
// daemon refuses apps' processes this way. It must be called before Serve.
func (s *Server) RefuseCallers(check CallerCheck) { s.check = check }

type peerKey struct{}

// peer is the credentials of a connection's peer; ok is false when the
// kernel could not tell them.
type peer struct {
	pid, uid int
	ok       bool
}

// withPeer stores the peer credentials of c in ctx (http.Server.ConnContext).
func withPeer(ctx context.Context, c net.Conn) context.Context {
	pid, uid, err := peerCred(c)
	return context.WithValue(ctx, peerKey{}, peer{pid: pid, uid: uid, ok: err == nil})
}

// guard serves h to the callers check accepts.
func (s *Server) guard(h http.Handler) http.Handler {
	if s.check == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := r.Context().Value(peerKey{}).(peer)
		if !p.ok {
			writeJSON(w, http.StatusForbidden, Event{Done: true, Error: "refused: the piku daemon could not tell who is calling"})
			return
		}
		if err := s.check(p.pid, p.uid); err != nil {
			s.log.Warn("control request refused", "path", r.URL.Path, "pid", p.pid, "uid", p.uid, "err", err)
			writeJSON(w, http.StatusForbidden, Event{Done: true, Error: err.Error()})
			return
		}
		h.ServeHTTP(w, r)
	})
}
