package h1

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

type ctxKey struct{}

// TestRequestContext checks the request context against what
// context.WithCancel's would do: Done, Err, Cause, values, AfterFunc with
// stop, and children made with the context package.
func TestRequestContext(t *testing.T) {
	conn, cancelConn := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	defer cancelConn()
	rc := newRequestContext(conn)
	if rc.Err() != nil || context.Cause(rc) != nil {
		t.Fatalf("new context: Err %v, Cause %v", rc.Err(), context.Cause(rc))
	}
	if rc.Value(ctxKey{}) != "v" {
		t.Fatalf("Value = %v, want the connection's", rc.Value(ctxKey{}))
	}
	if _, ok := rc.Deadline(); ok {
		t.Fatal("a deadline")
	}
	ran := make(chan string, 4)
	stopA := rc.AfterFunc(func() { ran <- "a" })
	stopB := context.AfterFunc(rc, func() { ran <- "b" }) // through the method
	_ = rc.AfterFunc(func() { ran <- "c" })
	child, cancelChild := context.WithCancel(rc)
	defer cancelChild()
	if !stopA() || stopA() {
		t.Fatal("stop: want true once, then false")
	}
	done := rc.Done()
	select {
	case <-done:
		t.Fatal("Done closed before cancel")
	default:
	}

	rc.cancel()
	rc.cancel() // a second cancel does nothing
	<-done
	if !errors.Is(rc.Err(), context.Canceled) || !errors.Is(context.Cause(rc), context.Canceled) {
		t.Fatalf("canceled: Err %v, Cause %v", rc.Err(), context.Cause(rc))
	}
	<-child.Done()
	if !errors.Is(child.Err(), context.Canceled) {
		t.Fatalf("child: Err %v", child.Err())
	}
	got := map[string]bool{}
	for range 2 {
		select {
		case s := <-ran:
			got[s] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("AfterFuncs run: %v", got)
		}
	}
	if !got["b"] || !got["c"] {
		t.Fatalf("AfterFuncs run: %v, want b and c", got)
	}
	if stopB() {
		t.Fatal("stop after the cancel reported true")
	}
	// After the cancel: AfterFunc runs at once, Done is closed.
	rc.AfterFunc(func() { ran <- "late" })
	if s := <-ran; s != "late" {
		t.Fatalf("late AfterFunc: %q", s)
	}
	select {
	case s := <-ran:
		t.Fatalf("%q ran although stopped", s)
	default:
	}
	if rc2 := newRequestContext(conn); true {
		rc2.cancel()
		<-rc2.Done() // made after the cancel: closed
	}
}

// TestRequestContextCanceledWithConnection checks that a request's context
// ends when its connection's does, whether the connection's ends while
// the request runs or before it begins.
func TestRequestContextCanceledWithConnection(t *testing.T) {
	base, cancelBase := context.WithCancel(context.Background())
	running := make(chan struct{})
	ended := make(chan error, 2)
	s := NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(running)
		<-r.Context().Done()
		ended <- r.Context().Err()
	}), limitsConfig, base, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Close()
	go func() {
		res, err := http.Get("http://" + ln.Addr().String() + "/")
		if err == nil {
			res.Body.Close()
		}
	}()
	<-running
	cancelBase()
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("request context ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request's context did not end with the server's base context")
	}
}

// BenchmarkRequestContext is what a request's context costs the proxy:
// made, registered with by the upstream client (AfterFunc, stopped once
// the answer is read) and canceled when the handler returns, from many
// connections at once. "context.WithCancel" is how it was made before.
//
//	go test -run '^$' -bench RequestContext -benchmem ./proxy/internal/h1/
func BenchmarkRequestContext(b *testing.B) {
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	f := func() {}
	b.Run("context.WithCancel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			conn, cancelConn := context.WithCancel(base)
			defer cancelConn()
			for pb.Next() {
				ctx, cancel := context.WithCancel(conn)
				stop := context.AfterFunc(ctx, f)
				stop()
				cancel()
			}
		})
	})
	b.Run("requestContext", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			conn, cancelConn := context.WithCancel(base)
			defer cancelConn()
			for pb.Next() {
				rc := newRequestContext(conn)
				stop := rc.AfterFunc(f)
				stop()
				rc.cancel()
			}
		})
	})
}
