package supervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/piku/piku/internal/procgroup"
	"github.com/piku/piku/internal/testdeps"
)

const helperEnv = "PIKU_SUPERVISOR_TEST_HELPER"

// TestMain lets the test binary act as an app: with PIKU_SUPERVISOR_TEST_HELPER=http
// it is a web server on $PORT that answers "gen=$GEN", and exits on /exit.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "http" {
		helperServer()
		return
	}
	os.Exit(m.Run())
}

func helperServer() {
	wd, _ := os.Getwd()
	fmt.Printf("env PORT=%s PROC_TYPE=%s PIKU_INSTANCE=%s cwd=%s\n",
		os.Getenv("PORT"), os.Getenv("PROC_TYPE"), os.Getenv("PIKU_INSTANCE"), wd)
	l, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(2)
	}
	gen := os.Getenv("GEN")
	_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/exit" {
			os.Exit(0)
		}
		if r.URL.Path == "/health" && r.Host != "app.example" {
			http.Error(w, "wrong host", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "gen=%s", gen)
	}))
}

// helperCommand runs the test binary as a web server.
func helperCommand() string { return "'" + os.Args[0] + "'" }

func helperEnvFor(gen string) []string {
	return append(slices.Clone(os.Environ()), helperEnv+"=http", "GEN="+gen)
}

// fakeRouter is a tiny proxy: requests go through do, Route swaps the
// backends, Drain waits for requests in flight.
type fakeRouter struct {
	mu       sync.Mutex
	cond     *sync.Cond
	addrs    []string
	next     int
	inflight map[string]int
	routes   [][]string
	drains   [][]string
	client   *http.Client
}

func newFakeRouter() *fakeRouter {
	r := &fakeRouter{inflight: map[string]int{}, client: &http.Client{}}
	r.cond = sync.NewCond(&r.mu)
	return r
}

func (r *fakeRouter) Route(app string, addrs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs = slices.Clone(addrs)
	r.routes = append(r.routes, slices.Clone(addrs))
}

func (r *fakeRouter) Drain(ctx context.Context, addrs []string) int {
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	defer stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drains = append(r.drains, slices.Clone(addrs))
	for ctx.Err() == nil && slices.ContainsFunc(addrs, func(a string) bool { return r.inflight[a] > 0 }) {
		r.cond.Wait()
	}
	n := 0
	for _, a := range addrs {
		n += r.inflight[a]
	}
	return n
}

func (r *fakeRouter) lastRoute() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.routes) == 0 {
		return nil
	}
	return r.routes[len(r.routes)-1]
}

// do sends one GET for path to the next backend, as a proxy would.
func (r *fakeRouter) do(path string) (string, error) {
	r.mu.Lock()
	if len(r.addrs) == 0 {
		r.mu.Unlock()
		return "", fmt.Errorf("no backends")
	}
	addr := r.addrs[r.next%len(r.addrs)]
	r.next++
	r.inflight[addr]++
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inflight[addr]--
		r.cond.Broadcast()
		r.mu.Unlock()
	}()
	resp, err := r.client.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

var _ Router = (*fakeRouter)(nil)

// testSup is a running Supervisor with its own directories.
type testSup struct {
	*Supervisor
	router *fakeRouter
	dir    string
	logs   string
}

func startSup(t testing.TB, state string) *testSup {
	t.Helper()
	dir := t.TempDir()
	r := newFakeRouter()
	s, err := New(Options{
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Router:    r,
		Ports:     PortRange{Bind: "127.0.0.1", Min: testdeps.PortBase() + testdeps.PortsSupervisor, Max: testdeps.PortBase() + testdeps.PortsSupervisor + 499},
		StateFile: state,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &testSup{Supervisor: s, router: r, dir: dir, logs: filepath.Join(dir, "logs")}
}

// workerUp is the boot timeout of tests whose workers run until stopped: a
// worker counts as started once its process has been up this long, so it
// only makes those tests quicker than the usual second.
const workerUp = 20 * time.Millisecond

// spec returns an AppSpec for app with fast timings.
func (ts *testSup) spec(app string, ps ...ProcessSpec) AppSpec {
	return AppSpec{App: app, Revision: "r1", Dir: ts.dir, Processes: ps,
		Policy: Policy{StopTimeout: 5 * time.Second, BootTimeout: 30 * time.Second, BackoffInitial: 10 * time.Millisecond, BackoffMax: time.Hour},
		Logs:   LogPolicy{Dir: ts.logs}}
}

func webSpec(count int, gen string) ProcessSpec {
	return ProcessSpec{Kind: "web", Command: helperCommand(), Count: count, Env: helperEnvFor(gen), Web: true}
}

// eventually polls cond until it holds. It is for what only polling can
// tell (/proc, a port, Status); the test's own timeout is its only bound.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx := testdeps.Waiting(t)
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s before the test's timeout", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func readLog(t testing.TB, path string) string {
	t.Helper()
	b, _ := os.ReadFile(path)
	return string(b)
}

func pids(st []InstanceStatus) map[string]int {
	m := map[string]int{}
	for _, in := range st {
		m[fmt.Sprintf("%s.%d", in.Kind, in.N)] = in.PID
	}
	return m
}

// gone reports whether process group pgid has no live member left.
func gone(pgid int) bool { return len(procgroup.Members(pgid)) == 0 }

// groupOf returns the process group of app's only instance, failing the
// test when it has no process.
func (ts *testSup) groupOf(t testing.TB, app string) int {
	t.Helper()
	st := ts.Status(app)
	if len(st) != 1 || st[0].PID <= 1 {
		t.Fatalf("%s: want one instance with a process, have %+v", app, st)
	}
	return st[0].PID
}

// fifo makes a named pipe in a temporary directory. A command that reads
// it (read x < FIFO) waits until the test writes a line with release.
func fifo(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// release lets one reader of the named pipe p go on.
func release(t testing.TB, p string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
}
