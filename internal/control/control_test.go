package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// memBackend is a small in-memory Backend for exercising the protocol.
type memBackend struct {
	mu      sync.Mutex
	apps    map[string]AppStatus
	deploys []DeployRequest
	paused  chan string // what Pause and its resume saw
}

func (b *memBackend) Apps(ctx context.Context) ([]AppStatus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []AppStatus
	for _, a := range b.apps {
		out = append(out, a)
	}
	return out, nil
}

func (b *memBackend) Status(ctx context.Context, app string) (AppStatus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st, ok := b.apps[app]
	if !ok {
		return AppStatus{}, fmt.Errorf("app %q: %w", app, ErrUnknownApp)
	}
	return st, nil
}

func (b *memBackend) Deploy(ctx context.Context, app string, req DeployRequest, out io.Writer) error {
	b.mu.Lock()
	b.deploys = append(b.deploys, req)
	b.mu.Unlock()
	fmt.Fprintf(out, "-----> deploying %s\n", app)
	fmt.Fprint(out, "partial line")
	if app == "broken" {
		return errors.New(`app "broken": web.1 did not become ready`)
	}
	b.mu.Lock()
	b.apps[app] = AppStatus{App: app, Running: true, Instances: []Instance{{Kind: "web", N: 1, State: "running", PID: 42}}}
	b.mu.Unlock()
	return nil
}

func (b *memBackend) Stop(ctx context.Context, app string, out io.Writer) error {
	fmt.Fprintf(out, "stopping %s\n", app)
	return nil
}

func (b *memBackend) Forget(ctx context.Context, app string) error { return nil }

func (b *memBackend) Pause(ctx context.Context, app string) (func(), error) {
	b.mu.Lock()
	_, ok := b.apps[app]
	b.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("app %q: %w", app, ErrUnknownApp)
	}
	b.paused <- app
	return func() { b.paused <- "resumed " + app }, nil
}

func startServer(t *testing.T, b Backend, opts ...func(*Server)) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "run", "piku.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := NewServer(b, Info{PID: os.Getpid(), Version: "test"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, o := range opts {
		o(srv)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return NewClient(sock)
}

func TestClientServer(t *testing.T) {
	b := &memBackend{apps: map[string]AppStatus{}}
	c := startServer(t, b)
	ctx := context.Background()

	info, err := c.Ping(ctx)
	if err != nil || info.Version != "test" {
		t.Fatalf("Ping = %+v, %v", info, err)
	}
	if _, err := c.Status(ctx, "nope"); !errors.Is(err, ErrUnknownApp) || strings.Count(err.Error(), "unknown app") != 1 {
		t.Fatalf("Status(nope) err = %v, want one ErrUnknownApp", err)
	}
	var out strings.Builder
	if err := c.Deploy(ctx, "blog", DeployRequest{Restart: []string{"*"}}, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "-----> deploying blog\npartial line\n" {
		t.Errorf("progress = %q", got)
	}
	if len(b.deploys) != 1 || b.deploys[0].Restart[0] != "*" {
		t.Errorf("deploys = %+v", b.deploys)
	}
	st, err := c.Status(ctx, "blog")
	if err != nil || !st.Running || st.Instances[0].PID != 42 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	apps, err := c.Apps(ctx)
	if err != nil || len(apps) != 1 {
		t.Fatalf("Apps = %+v, %v", apps, err)
	}
	err = c.Deploy(ctx, "broken", DeployRequest{}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "did not become ready") {
		t.Fatalf("Deploy(broken) = %v", err)
	}
	if err := c.Stop(ctx, "blog", io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := c.Forget(ctx, "blog"); err != nil {
		t.Fatal(err)
	}
}

func TestBadAppNamesRefused(t *testing.T) {
	c := startServer(t, &memBackend{apps: map[string]AppStatus{}})
	for _, name := range []string{"..", ".x", "a b", "-rf"} {
		if _, err := c.Status(context.Background(), name); err == nil {
			t.Errorf("Status(%q) accepted", name)
		}
	}
}

func TestNotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "piku.sock")
	_, err := NewClient(sock).Apps(context.Background())
	if !IsNotRunning(err) {
		t.Fatalf("err = %v, want NotRunningError", err)
	}
	if !strings.Contains(err.Error(), "not running") {
		t.Errorf("message %q", err)
	}
}

func TestListenRefusesLiveAndReplacesStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "piku.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Listen = %v, want already running", err)
	}
	// A socket file nobody answers on (a daemon killed with -9) is stale.
	l.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("socket file should remain: %v", err)
	}
	l2, err := Listen(sock)
	if err != nil {
		t.Fatalf("Listen over stale socket: %v", err)
	}
	l2.Close()
}

// TestPause: a pause is on once Pause returns and ends when the client
// resumes, or when its connection ends; an unknown app is refused.
func TestPause(t *testing.T) {
	b := &memBackend{apps: map[string]AppStatus{"app": {App: "app"}}, paused: make(chan string, 4)}
	c := startServer(t, b)
	ctx := context.Background()
	if _, err := c.Pause(ctx, "nothere"); !errors.Is(err, ErrUnknownApp) {
		t.Fatalf("unknown app: %v", err)
	}
	resume, err := c.Pause(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if got := <-b.paused; got != "app" {
		t.Fatalf("paused %q", got)
	}
	resume()
	if got := <-b.paused; got != "resumed app" {
		t.Fatalf("after resume: %q", got)
	}

	// A client that goes away (its context ends) resumes too.
	cctx, cancel := context.WithCancel(ctx)
	if _, err := c.Pause(cctx, "app"); err != nil {
		t.Fatal(err)
	}
	<-b.paused
	cancel()
	if got := <-b.paused; got != "resumed app" {
		t.Fatalf("after the client went away: %q", got)
	}
}

// TestRestart: the restart endpoint answers its function's error, and a
// daemon without it (older) is told apart, so that `piku service restart`
// falls back to the service manager's restart.
func TestRestart(t *testing.T) {
	old := startServer(t, &memBackend{apps: map[string]AppStatus{}})
	if err := old.Restart(context.Background()); !errors.Is(err, ErrRestartUnsupported) {
		t.Errorf("a daemon without restarts in place: %v, want ErrRestartUnsupported", err)
	}
	refuse := startServer(t, &memBackend{apps: map[string]AppStatus{}}, func(s *Server) {
		s.HandleRestart(func(context.Context) error { return errors.New("not restarting in place: bad settings") })
	})
	if err := refuse.Restart(context.Background()); err == nil || err.Error() != "not restarting in place: bad settings" {
		t.Errorf("a refused restart: %v", err)
	}
	ok := startServer(t, &memBackend{apps: map[string]AppStatus{}}, func(s *Server) { s.HandleRestart(func(context.Context) error { return nil }) })
	if err := ok.Restart(context.Background()); err != nil {
		t.Errorf("a restart: %v", err)
	}
}
