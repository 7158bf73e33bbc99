package uwsgi

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/piku/piku/internal/procgroup"
	"github.com/piku/piku/internal/testdeps"
)

// acceptingHook makes every uWSGI worker print acceptingLine once it is
// ready: its signal handlers are installed and it takes requests. uWSGI
// reads options from UWSGI_* variables too. (It also logs that it runs the
// hook, on a line of its own that holds acceptingLine.)
const (
	acceptingHook = "UWSGI_HOOK_ACCEPTING=print:" + acceptingLine
	acceptingLine = "piku-test: worker accepting"
)

// TestRealUWSGI runs a vassal with the real uwsgi as the supervisor does:
// it must serve HTTP on $(PORT), and end with all its workers on SIGTERM to
// its process group, without the SIGKILL that follows the stop timeout.
//
// It waits until both workers are accepting before it stops them. A
// worker still in its post-fork start (Python's at-fork hooks run before
// uWSGI installs the worker's signal handlers) takes SIGTERM or the
// master's SIGINT as a KeyboardInterrupt and goes on to serve, and the
// master waits its 60s "mercy" for it: on a busy machine, where the test
// used to stop uWSGI as soon as one worker answered, that is what "uwsgi
// still running 10s after SIGTERM" was.
func TestRealUWSGI(t *testing.T) {
	bin := testdeps.Require(t, "uwsgi", "apt-get install uwsgi-core uwsgi-plugin-python3")
	if err := Check("wsgi", nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	app := "def application(environ, start_response):\n" +
		"    start_response('200 OK', [('Content-Type', 'text/plain')])\n" +
		"    return [('hello from %s %s' % (environ['PATH_INFO'], __import__('os').environ.get('GREETING'))).encode()]\n"
	if err := os.WriteFile(filepath.Join(dir, "hello.py"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	vassals := filepath.Join(dir, "uwsgi-available")
	ini, err := Vassal(Options{App: "hello", Kind: "wsgi", Command: "hello:application", AppDir: dir,
		Env: env("GREETING", "hi", "UWSGI_PROCESSES", "2")})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(vassals, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vassals, "hello_wsgi.1.ini"), ini, 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	// The command the supervisor runs for instance 1 of kind wsgi.
	cmd := exec.Command("/bin/sh", "-c", InstanceCommand(vassals, "hello", "wsgi"))
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), InstanceEnv+"=1",
		"PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"), acceptingHook)
	out := newOutput()
	cmd.Stdout, cmd.Stderr = out, out
	p, err := procgroup.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(0, nil) })
	wait := testdeps.Waiting(t)

	// Both workers take requests: the master bound the socket before
	// forking them.
	if err := out.waitLines(wait.Done(), p.Done(), acceptingLine, 2); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/ping", port))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello from /ping hi" {
		t.Errorf("body = %q", body)
	}

	// What the supervisor does to stop an instance: SIGTERM to the group,
	// here with a grace period that lasts until just before the test's own
	// timeout.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-wait.Done():
		t.Fatalf("uwsgi was still running when the test's time ran out\n%s", out)
	}
	if got := p.Exit(); got != "exit 0" {
		t.Errorf("uwsgi ended with %s, want exit 0 (die-on-term)\n%s", got, out)
	}
	// The master exits after it has reaped its workers: nothing is left.
	if m := procgroup.Members(p.PGID); len(m) > 0 {
		t.Errorf("processes %v of the group outlived the master\n%s", m, out)
	}
	if strings.Contains(out.String(), "NO MERCY") {
		t.Errorf("uwsgi had to kill workers that did not stop\n%s", out)
	}
}

// output collects a process's output and lets the test wait for lines in
// it.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newOutput() *output { return &output{changed: make(chan struct{})} }

func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	close(o.changed)
	o.changed = make(chan struct{})
	return o.buf.Write(b)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitLines waits until n lines are line, the process exits (exited is
// closed) or giveUp is closed.
func (o *output) waitLines(giveUp, exited <-chan struct{}, line string, n int) error {
	for {
		o.mu.Lock()
		have := 0
		for l := range bytes.Lines(o.buf.Bytes()) {
			if string(bytes.TrimSuffix(l, []byte("\n"))) == line {
				have++
			}
		}
		changed := o.changed
		o.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-changed:
		case <-exited:
			return fmt.Errorf("uwsgi exited after %d of %d %q lines", have, n, line)
		case <-giveUp:
			return fmt.Errorf("gave up before the test's timeout with %d of %d %q lines", have, n, line)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
