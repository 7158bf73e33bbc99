package procgroup

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestTCPPeer finds the process at the far end of a loopback connection:
// a child that connects to the test's listener.
func TestTCPPeer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	// The child connects with bash's /dev/tcp and waits to be killed.
	cmd := exec.Command("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/"+strconv.Itoa(port)+"; exec sleep 60")
	if err := cmd.Start(); err != nil {
		t.Skipf("bash: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer := c.RemoteAddr().(*net.TCPAddr).Port
	if got := TCPPeer(peer, port); got != cmd.Process.Pid {
		t.Errorf("TCPPeer = %d, want the child %d (this test is %d)", got, cmd.Process.Pid, os.Getpid())
	}
	if got := TCPPeer(peer, port+1); got != 0 {
		t.Errorf("TCPPeer of a connection that does not exist = %d, want 0", got)
	}
}

// TestListenerOwners finds the process that holds a listening socket: a
// child that listens, and then nothing once it is gone.
func TestListenerOwners(t *testing.T) {
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
	if err := cmd.Start(); err != nil {
		t.Skipf("python3: %v", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	if pids, listening := ListenerOwners(port); len(pids) != 1 || pids[0] != cmd.Process.Pid || !listening {
		t.Errorf("ListenerOwners(%d) = %v, %v, want the child %d", port, pids, listening, cmd.Process.Pid)
	}
	if name := ProcessName(cmd.Process.Pid); !strings.HasPrefix(name, "python3") {
		t.Errorf("ProcessName = %q, want python3", name)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if pids, listening := ListenerOwners(port); len(pids) != 0 || listening {
		t.Errorf("ListenerOwners(%d) once the child is gone = %v, %v", port, pids, listening)
	}
}
