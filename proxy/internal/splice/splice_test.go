//go:build linux

package splice

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// tcpPair is two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

func raw(t *testing.T, c *net.TCPConn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// TestPipeRelays: bytes written into a pipe from memory and moved into it
// from one socket come out of another in order; the source's end is
// io.EOF.
func TestPipeRelays(t *testing.T) {
	srcW, srcR := tcpPair(t)
	dstW, dstR := tcpPair(t)
	var pl Pool
	pl.Max = 1
	p := pl.Get()
	if p == nil {
		t.Fatal("no pipe")
	}
	want := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640,000 bytes
	head, rest := want[:1000], want[1000:]
	go func() {
		srcW.Write(rest)
		srcW.Close()
	}()
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(dstR)
		got <- b
	}()
	if n, err := p.Write(head); n != len(head) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	for {
		if _, err := p.DrainTo(raw(t, dstW)); err != nil {
			t.Fatal(err)
		}
		_, err := p.FillFrom(raw(t, srcR), Size)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	dstW.Close()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("got %d bytes, want the %d sent", len(b), len(want))
	}
	pl.Put(p)
	if pl.Get() != p {
		t.Error("an empty pipe put back is not lent again")
	}
}

// TestPipeDrainDeadline: a drain to a client that takes nothing ends at
// the connection's write deadline, what it could not move still in the
// pipe to be read back.
func TestPipeDrainDeadline(t *testing.T) {
	dstW, _ := tcpPair(t)
	p, err := newPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	chunk := bytes.Repeat([]byte{7}, 16<<10)
	moved := 0
	dstW.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	for {
		if n, err := p.Write(chunk); n == 0 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		n, err := p.DrainTo(raw(t, dstW))
		moved += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	left := p.Len()
	if left == 0 {
		t.Fatal("the pipe is empty after a drain that timed out")
	}
	b, err := io.ReadAll(p)
	if err != nil || len(b) != left || p.Len() != 0 {
		t.Fatalf("read back %d bytes (%v), the pipe said %d, %d left", len(b), err, left, p.Len())
	}
	t.Logf("%d bytes moved before the deadline, %d read back", moved, left)
}

// TestPoolBound: no more than Max pipes are lent at once; one put back
// with bytes in it is closed, not lent again.
func TestPoolBound(t *testing.T) {
	pl := Pool{Max: 2}
	a, b := pl.Get(), pl.Get()
	if a == nil || b == nil {
		t.Fatal("fewer than Max pipes lent")
	}
	if pl.Get() != nil {
		t.Fatal("more than Max pipes lent")
	}
	a.Write([]byte("left"))
	pl.Put(a)
	c := pl.Get()
	if c == nil || c == a {
		t.Fatalf("after a pipe with bytes came back: got %p (it was %p)", c, a)
	}
	pl.Put(b)
	pl.Put(c)
	pl.Close()
	if pl.Get() != nil {
		t.Error("a closed pool lends a pipe")
	}
}
