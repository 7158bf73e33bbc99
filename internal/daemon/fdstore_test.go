package daemon

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestListenerGoesToTheFDStore: a socket the daemon binds under systemd is
// sent to $NOTIFY_SOCKET in an FDSTORE=1 datagram, named after its key,
// with the socket itself attached.
func TestListenerGoesToTheFDStore(t *testing.T) {
	sockPath := filepath.Join(t.TempDir(), "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	t.Setenv("NOTIFY_SOCKET", sockPath)

	l := inheritFrom(slog.New(slog.NewTextHandler(io.Discard, nil)), 3)
	ln, err := l.listen("tcp:127.0.0.1:0", func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	_ = notify.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf, oob := make([]byte, 512), make([]byte, 128)
	n, oobn, _, _, err := notify.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(buf[:n]), "FDSTORE=1\nFDNAME=tcp|127.0.0.1|0"; got != want {
		t.Errorf("datagram %q, want %q", got, want)
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages %v, %v", msgs, err)
	}
	fds, err := syscall.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("descriptors %v, %v", fds, err)
	}
	f := os.NewFile(uintptr(fds[0]), "stored")
	stored, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer stored.Close()
	if stored.Addr().String() != ln.Addr().String() {
		t.Errorf("stored socket on %s, want %s", stored.Addr(), ln.Addr())
	}
}

// TestListenersFromSystemd: the sockets systemd passes (LISTEN_FDS,
// LISTEN_FDNAMES) are taken instead of binding, by name, and the
// variables are removed from the environment.
func TestListenersFromSystemd(t *testing.T) {
	orig, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	f, err := orig.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	// A descriptor of its own, as systemd passes: the daemon closes it.
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	key := "tcp:" + orig.Addr().String()
	name, _ := fdName(key)
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	t.Setenv("LISTEN_FDS", "1")
	t.Setenv("LISTEN_FDNAMES", name)
	t.Setenv("NOTIFY_SOCKET", "")

	l := inheritFrom(slog.New(slog.NewTextHandler(io.Discard, nil)), fd)
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if _, ok := os.LookupEnv(v); ok {
			t.Errorf("%s is still in the environment", v)
		}
	}
	ln, err := l.listen(key, func() (net.Listener, error) {
		t.Error("bound again instead of taking the socket systemd passed")
		return net.Listen("tcp", "127.0.0.1:0")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().String() != orig.Addr().String() {
		t.Errorf("listening on %s, want %s", ln.Addr(), orig.Addr())
	}
}
