package isolation

import (
	"net"
	"os"
	"os/exec"
	"strconv"
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
