package procgroup

import (
	"bufio"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestOwnsListener(t *testing.T) {
	// A group whose process listens on a port of its own.
	cmd := exec.Command("python3", "-c", `import socket, signal
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
signal.pause()`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(cmd)
	if err != nil {
		t.Skipf("python3: %v", err)
	}
	defer p.Stop(time.Second, nil)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	own, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	if answer, ok := p.OwnsListener(own); !ok {
		t.Errorf("its own listener on %d: %s", own, answer)
	}

	// A port another process (this test) listens on: a squatter.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	other := l.Addr().(*net.TCPAddr).Port
	answer, ok := p.OwnsListener(other)
	if ok || !strings.Contains(answer, "port "+strconv.Itoa(other)+" is held by another process (pid ") {
		t.Errorf("a squatter's listener on %d: %q, %v", other, answer, ok)
	}
	l.Close()
	if answer, ok := p.OwnsListener(other); ok || !strings.Contains(answer, "no socket listens on port") {
		t.Errorf("a port nothing listens on: %q, %v", answer, ok)
	}
}
