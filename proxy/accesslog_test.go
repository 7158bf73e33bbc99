package proxy

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAccessLog(t *testing.T) {
	backend := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		w.Write([]byte("created"))
	})
	path := filepath.Join(t.TempDir(), "logs", "app", "access.log")
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{backend}, AccessLog: path})
	do(t, nil, addr, "POST", "app.test", "/items?x=1", strings.NewReader("a"), "Referer", "http://ref/", "User-Agent", `ua "quoted"`)
	do(t, nil, addr, "GET", "app.test", "/.git/config", nil)
	s.RemoveRoute("app") // closes the file
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []*regexp.Regexp{
		regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "POST /items\?x=1 HTTP/1\.1" 201 7 "http://ref/" "ua \\x22quoted\\x22" \d+\.\d{3}$`),
		regexp.MustCompile(`^127\.0\.0\.1 - - \[.+\] "GET /\.git/config HTTP/1\.1" 403 \d+ "-" "Go-http-client/1\.1" \d+\.\d{3}$`),
	}
	if len(lines) != len(want) {
		t.Fatalf("log:\n%s", b)
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %d = %q, want %v", i, lines[i], re)
		}
	}
}

// logLine writes one access log line for path to l.
func logLine(l *accessLog, path string) {
	r, _ := http.NewRequest("GET", "http://app.test"+path, nil)
	r.RequestURI = path
	r.Proto = "HTTP/1.1"
	l.write(r, &logWriter{status: 200, bytes: 5}, &reqInfo{client: "192.0.2.1", start: time.Now()}, time.Millisecond)
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestAccessLogBuffered(t *testing.T) {
	t.Run("close writes what is buffered", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "access.log")
		l := newAccessLog(path)
		l.every = time.Hour
		for i := range 3 {
			logLine(l, "/line"+strconv.Itoa(i))
		}
		if got := readLines(t, path); len(got) != 0 {
			t.Fatalf("lines written before a flush: %q", got)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		got := readLines(t, path)
		if len(got) != 3 {
			t.Fatalf("after Close: %q, want 3 lines", got)
		}
		for i, line := range got {
			if !strings.Contains(line, `"GET /line`+strconv.Itoa(i)+` HTTP/1.1" 200 5 "-" "-" 0.001`) {
				t.Errorf("line %d = %q", i, line)
			}
		}
		// The line of a request still running at Close goes straight to
		// the file, which is not left open (before, it waited for a
		// timed flush, and the file stayed open for good).
		logLine(l, "/after")
		if got := readLines(t, path); len(got) != 4 || !strings.Contains(got[3], "/after") {
			t.Errorf("a line after Close: %q", got)
		}
		if n := openCount(t, path); n != 0 {
			t.Errorf("the log is open %d times after a line came after Close", n)
		}
	})
	t.Run("a full buffer is written at once", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "access.log")
		l := newAccessLog(path)
		l.every = time.Hour
		defer l.Close()
		n := 0
		for ; len(readLines(t, path)) == 0; n++ {
			if n > accessLogBuffer { // a line is longer than a byte
				t.Fatal("the buffer was never written")
			}
			logLine(l, "/x")
		}
		if n < accessLogBuffer/100 {
			t.Errorf("written after %d lines: not buffered", n)
		}
		if got := readLines(t, path); len(got) != n {
			t.Errorf("%d lines in the file, %d written", len(got), n)
		}
	})
	t.Run("a line waits at most the flush interval", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "access.log")
		l := newAccessLog(path)
		l.every = time.Millisecond
		defer l.Close()
		logLine(l, "/soon")
		for len(readLines(t, path)) == 0 {
			time.Sleep(time.Millisecond) // the timer writes it; the test's timeout bounds the wait
		}
		logLine(l, "/again") // the timer is armed again
		for len(readLines(t, path)) < 2 {
			time.Sleep(time.Millisecond)
		}
	})
}

// TestAccessLogHeld: a request that waited in the hold queue (its app
// waking) says how long, `held=...s`, on its line; the others do not.
func TestAccessLogHeld(t *testing.T) {
	be := backendServer(t, named("web"))
	path := filepath.Join(t.TempDir(), "access.log")
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, AccessLog: path})
	s.Hold("app")
	res := sendHeld(t.Context(), addr, "GET", "app.test", "", false)
	waitHeld(t, s, "app", 1)
	s.SetBackends("app", []string{be})
	if r := <-res; r.code != 200 {
		t.Fatalf("held: %d %v", r.code, r.err)
	}
	s.Release("app")
	if r := <-sendHeld(t.Context(), addr, "GET", "app.test", "", false); r.code != 200 {
		t.Fatalf("after: %d %v", r.code, r.err)
	}
	s.RemoveRoute("app") // closes the file
	lines := readLines(t, path)
	if len(lines) != 2 {
		t.Fatalf("log: %q", lines)
	}
	m := regexp.MustCompile(` (\d+\.\d{3}) held=(\d+\.\d{3})s$`).FindStringSubmatch(lines[0])
	if m == nil {
		t.Fatalf("held request's line %q: no held=", lines[0])
	}
	total, _ := strconv.ParseFloat(m[1], 64)
	held, _ := strconv.ParseFloat(m[2], 64)
	if held > total {
		t.Errorf("held %vs longer than the request's %vs", held, total)
	}
	if strings.Contains(lines[1], "held=") {
		t.Errorf("a request that did not wait: %q", lines[1])
	}
}

// openCount is how many of this process's file descriptors are open on
// path.
func openCount(t *testing.T, path string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == path {
			n++
		}
	}
	return n
}
