package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// budgetRecorder is a recorder that counts ConnBudgetFull.
type budgetRecorder struct {
	*recorder
	full atomic.Int32
}

func (r *budgetRecorder) ConnBudgetFull() { r.full.Add(1) }

// TestConnBudgetClosesIdleFirst: when the client connections come near
// Options.MaxConns, the idle keep-alive ones are closed, so that a client
// waiting in the backlog is served. Before, the idle connections stayed
// until their idle timeout (120 s), and the waiting client with them.
func TestConnBudgetClosesIdleFirst(t *testing.T) {
	back := backendServer(t, named("app"))
	rec := &budgetRecorder{recorder: newRecorder()}
	rec.conns = make(chan int, 1000)
	_, addr := startProxy(t, Options{MaxConns: 4, Observer: rec}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{back}})

	get := func() *http.Response {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() }) // kept open, idle, until the test ends
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	// Twice the budget of clients, each left open and idle after its
	// answer: every one is served.
	for i := range 8 {
		if res := get(); res.StatusCode != 200 {
			t.Fatalf("client %d: %d", i, res.StatusCode)
		}
	}
	if rec.full.Load() == 0 {
		t.Error("the observer was not told the budget was reached")
	}
}

// TestConnBudget: keep-alive goes off once 95 % of the budget is taken
// or a client finds none free, and on again once a tenth is free.
func TestConnBudget(t *testing.T) {
	var events []bool
	b := newConnBudget(20, func(on bool) { events = append(events, on) })
	done := make(chan struct{})
	step := func(what string, want ...bool) {
		t.Helper()
		if len(events) != len(want) {
			t.Fatalf("after %s: pressure events %v, want %v", what, events, want)
		}
		for i := range want {
			if events[i] != want[i] {
				t.Fatalf("after %s: pressure events %v, want %v", what, events, want)
			}
		}
	}
	for range 18 {
		b.take(done)
	}
	step("18 of 20")
	b.take(done)
	step("19 of 20", true)
	b.take(done)
	step("20 of 20", true)
	b.release()
	b.release()
	step("18 of 20", true)
	b.release()
	step("17 of 20", true, false)
	b.take(done)
	b.take(done)
	step("19 of 20 again", true, false, true)
	for range 3 {
		b.release()
	}
	step("16 of 20", true, false, true, false)
	for range 4 {
		b.take(done)
	}
	step("20 of 20 again", true, false, true, false, true)
	close(done)
	if b.take(done) {
		t.Error("took a slot of a full budget once done")
	}
}

// deadlineConn records the write deadlines set on it.
type deadlineConn struct {
	net.Conn // nil: only the methods below are called
	set      []time.Time
}

func (d *deadlineConn) Write(p []byte) (int, error)        { return len(p), nil }
func (d *deadlineConn) SetWriteDeadline(t time.Time) error { d.set = append(d.set, t); return nil }

// TestClientConnSendTimeout: each write moves the write deadline to the
// send timeout from now, so the timeout bounds the time between two
// writes and not the whole response; a deadline less than a second early
// is kept; a deadline set by the server (net/http clears it) is taken
// into account.
func TestClientConnSendTimeout(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0
	d := &deadlineConn{}
	c := &clientConn{Conn: d, sendTimeout: time.Minute, now: func() time.Time { return now }}
	for _, step := range []struct {
		after time.Duration // since t0
		clear bool          // the server clears the deadline first
		want  time.Time     // the deadline set by the write; zero: none
	}{
		{0, false, t0.Add(time.Minute)},
		{500 * time.Millisecond, false, time.Time{}},
		{2 * time.Second, false, t0.Add(2*time.Second + time.Minute)},
		{10 * time.Minute, false, t0.Add(10*time.Minute + time.Minute)}, // a long, steady download goes on
		{10*time.Minute + 100*time.Millisecond, true, t0.Add(10*time.Minute + 100*time.Millisecond + time.Minute)},
	} {
		now = t0.Add(step.after)
		if step.clear {
			c.SetWriteDeadline(time.Time{})
		}
		d.set = nil
		c.Write([]byte("x"))
		switch {
		case step.want.IsZero() && len(d.set) != 0:
			t.Errorf("write at +%v moved the deadline to %v, want it kept", step.after, d.set)
		case !step.want.IsZero() && (len(d.set) != 1 || !d.set[0].Equal(step.want)):
			t.Errorf("write at +%v set %v, want %v", step.after, d.set, step.want)
		}
	}
}
