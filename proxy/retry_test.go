package proxy

import (
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// fullBacklog returns the address of a listener that never accepts and
// whose backlog is full, so that a new connection to it hangs in SYN_SENT
// until the dialer gives up: a server stopped while its queue was full.
func fullBacklog(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
	// Fill the queue: these complete the handshake and are never
	// accepted; the connection after them cannot.
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr
}

// TestRetryOnConnectTimeout puts a backend whose connections time out
// beside a healthy one: idempotent requests that picked the first are
// sent to the second, and the client never sees the timeout.
func TestRetryOnConnectTimeout(t *testing.T) {
	stuck := fullBacklog(t)
	good := backendServer(t, named("good"))
	_, addr := startProxy(t, Options{DialTimeout: 500 * time.Millisecond},
		Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{stuck, good}})
	for _, method := range []string{"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "GET"} {
		r := do(t, nil, addr, method, "app.test", "/", nil)
		if r.code != http.StatusOK {
			t.Errorf("%s: %d %q, want 200 from the healthy backend", method, r.code, r.body)
		}
	}
}
