package uwsgi

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piku/piku/internal/testdeps"
)

// TestRealUWSGI runs a vassal with the real uwsgi: it must serve HTTP on
// $(PORT), and stop promptly with all its workers on SIGTERM.
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
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), InstanceEnv+"=1", "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	})

	url := fmt.Sprintf("http://127.0.0.1:%d/ping", port)
	var body string
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		select {
		case err := <-done:
			t.Fatalf("uwsgi exited: %v\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("uwsgi never answered on %s: %v\n%s", url, err, out.String())
		}
	}
	if body != "hello from /ping hi" {
		t.Errorf("body = %q", body)
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("uwsgi still running 10s after SIGTERM\n%s", out.String())
	}
	t.Logf("uwsgi stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	// The workers are gone too: nothing is left in the process group.
	gone := time.Now().Add(5 * time.Second)
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(gone) {
			t.Fatalf("workers of process group %d still running after the master exited", pgid)
		}
		time.Sleep(50 * time.Millisecond)
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
