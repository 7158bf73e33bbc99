package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/piku/piku/internal/procgroup"
)

// instance is one ordinal of one kind of one app, in one generation. Its
// owner goroutine (run) holds the process and decides everything about it;
// others read a snapshot of its status and ask it to stop.
type instance struct {
	s        *Supervisor
	log      *slog.Logger
	app      string
	spec     ProcessSpec
	n        int
	gen      int
	revision string
	dir      string
	policy   Policy
	logPath  string
	// port and addr change only under Supervisor.mu and mu together (when
	// a restart finds the port taken); fixed ports never change.
	port  int
	addr  string
	fixed bool

	boot chan error    // gets the outcome of the first start: nil when ready
	quit chan struct{} // closed to ask for a graceful stop
	kill chan struct{} // closed to skip the rest of the grace period
	done chan struct{} // closed when the process is gone and everything released

	quitOnce, killOnce sync.Once

	mu     sync.Mutex
	status InstanceStatus
	probed string // what the last failed readiness check saw

	oomSeen int64        // the app's OOM kill count when the process started; owner only
	output  *outputLimit // the app's output rate

	// digest is specDigest of what the instance runs, recorded in the
	// state file; adopted is the process an earlier daemon started, which
	// the owner watches before it starts any (adopt.go).
	digest  string
	adopted *proc
}

// lastProbe says what the last failed readiness check of a web instance
// saw: the address or health URL checked and what answered.
func (in *instance) lastProbe() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.probed == "" {
		return "nothing answered on " + in.addr + " yet"
	}
	return in.probed
}

func (in *instance) name() string { return in.spec.Kind + "." + strconv.Itoa(in.n) }

// address is addr for readers that hold neither lock.
func (in *instance) address() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.addr
}

// movePort gives a web instance a new port when something else took its
// own while it was down, so that its restart does not fail on it for
// ever, and routes the app to the new address. A pinned port stays.
func (in *instance) movePort() {
	if !in.spec.Web || in.fixed || canListen(in.address()) {
		return
	}
	s := in.s
	port, err := s.ports.take(0)
	if err != nil {
		in.log.Error("its port is taken and no other is free", "port", in.port, "err", err)
		return
	}
	old := in.port
	s.mu.Lock()
	in.mu.Lock()
	in.port, in.addr = port, s.ports.addr(port)
	in.status.Port, in.status.Addr = in.port, in.addr
	in.mu.Unlock()
	s.mu.Unlock()
	s.ports.release(old)
	in.log.Warn("its port was taken while it was down: moved", "from", old, "to", port)
	s.mu.Lock()
	a := s.apps[in.app]
	s.mu.Unlock()
	if a != nil {
		s.route(in.app, a)
	}
}

func (in *instance) snapshot() InstanceStatus {
	in.mu.Lock()
	st := in.status
	in.mu.Unlock()
	if st.PID != 0 {
		st.RSS = procgroup.RSS(st.PID)
		st.CPU = procgroup.CPU(st.PID)
	}
	return st
}

func (in *instance) update(f func(st *InstanceStatus)) {
	in.mu.Lock()
	f(&in.status)
	in.mu.Unlock()
}

// stop asks the instance to stop gracefully and waits until it is gone. If
// ctx ends first, the process group is killed at once.
func (in *instance) stop(ctx context.Context) {
	in.quitOnce.Do(func() { close(in.quit) })
	select {
	case <-in.done:
		return
	case <-ctx.Done():
	}
	in.killOnce.Do(func() { close(in.kill) })
	<-in.done
}

// proc is one running process of an instance.
type proc struct {
	*procgroup.Process
	copied chan struct{} // closed when the output copier is done
	out    *os.File      // read end of the output pipe
	fifo   string        // the output FIFO's path; "" for a plain pipe
}

// run is the owner goroutine: start, watch, restart with backoff, stop.
func (in *instance) run() {
	defer close(in.done)
	defer func() { in.s.ports.release(in.port) }() // the port in use at the end
	defer in.s.logs.close(in.logPath)

	bo := newBackoff(in.policy.BackoffInitial, in.policy.BackoffMax, in.s.healthyRun)
	adopted := in.adopted
	in.adopted = nil
	booted := adopted != nil // nobody waits for an adopted instance's boot
	bootResult := func(err error) {
		if !booted {
			booted = true
			in.boot <- err
		}
	}
	for {
		select {
		case <-in.quit:
			bootResult(fmt.Errorf("%s was stopped before it was ready", in.name()))
			in.update(func(st *InstanceStatus) { st.State, st.NextRetry = StateStopped, time.Time{} })
			return
		default:
		}
		var ran time.Duration
		p, err := adopted, error(nil)
		if p == nil {
			p, err = in.start()
		}
		adopted = nil
		if err != nil {
			in.log.Error("starting", "err", err)
			in.update(func(st *InstanceStatus) { st.LastExit, st.ExitCode = err.Error(), -1 })
			bootResult(fmt.Errorf("%s did not start: %w", in.name(), err))
		} else {
			if stopped := in.watch(p, bootResult); stopped {
				return
			}
			ran = time.Since(p.Started)
			last := in.exitCause(p)
			in.log.Info("exited", "pid", p.Pid(), "status", last, "ran", ran.Round(time.Millisecond))
			code := p.ExitCode()
			in.update(func(st *InstanceStatus) { st.State, st.PID, st.LastExit, st.ExitCode = StateExited, 0, last, code })
			if !booted && (in.spec.Web || !p.Success()) {
				msg := fmt.Sprintf("%s exited (%s) before it was ready", in.name(), last)
				if tail := lastLines(in.logPath, 10); tail != "" {
					msg += "; last log lines:\n" + tail
				}
				bootResult(errors.New(msg))
			}
			bootResult(nil) // a worker that finished its job cleanly
		}
		delay, looping := bo.exited(ran)
		state := StateBackoff
		if looping {
			state = StateCrashLoop
			in.log.Warn("crash loop: retrying at a slow pace", "every", in.policy.BackoffMax)
		}
		next := time.Now().Add(delay)
		in.update(func(st *InstanceStatus) { st.State, st.NextRetry = state, next })
		t := time.NewTimer(delay)
		select {
		case <-t.C:
			in.update(func(st *InstanceStatus) {
				st.Restarts++
				st.RecentRestarts = recentRestarts(st.RecentRestarts, time.Now())
				st.NextRetry = time.Time{}
			})
			in.movePort()
		case <-in.quit:
			t.Stop()
			in.update(func(st *InstanceStatus) { st.State, st.NextRetry = StateStopped, time.Time{} })
			return
		}
	}
}

// watch waits for p to exit, become ready, or be asked to stop. It reports
// whether the instance was stopped (then the owner is done).
func (in *instance) watch(p *proc, bootResult func(error)) (stopped bool) {
	ctx, cancel := context.WithCancel(context.Background())
	var probes sync.WaitGroup
	ready := make(chan struct{}, 1)
	unhealthy := make(chan string, 1)
	if in.spec.Web {
		probes.Go(func() {
			seen := func(answer string) { in.mu.Lock(); in.probed = answer; in.mu.Unlock() }
			owned := func() (string, bool) { return p.OwnsListener(in.port) }
			if probeUntilReady(ctx, in.address(), in.spec.HealthPath, in.spec.HealthHost, owned, seen) {
				ready <- struct{}{}
			}
		})
	} else {
		// Workers have no readiness signal: one still up after a second
		// (or the boot timeout, if shorter) counts as started.
		probes.Go(func() {
			t := time.NewTimer(min(time.Second, in.policy.BootTimeout))
			defer t.Stop()
			select {
			case <-t.C:
				ready <- struct{}{}
			case <-ctx.Done():
			}
		})
	}
	defer func() {
		cancel()
		probes.Wait()
	}()
	for {
		select {
		case <-ready:
			in.update(func(st *InstanceStatus) { st.State = StateRunning })
			bootResult(nil)
			if in.spec.Web && in.policy.HealthInterval > 0 {
				probes.Go(func() { in.checkHealth(ctx, unhealthy) })
			}
		case reason := <-unhealthy:
			in.log.Warn("restarting: "+reason, "pid", p.Pid())
			in.update(func(st *InstanceStatus) { st.State, st.LastHealthError = StateUnhealthy, reason })
			// A stopped (SIGSTOP) group would hold SIGTERM pending until
			// the SIGKILL: let it run so it can stop gracefully.
			_ = p.Signal(syscall.SIGCONT)
			p.Stop(in.policy.StopTimeout, in.kill) // p.Done follows
		case <-p.Done():
			in.finish(p)
			return false
		case <-in.quit:
			in.terminate(p)
			bootResult(fmt.Errorf("%s was stopped before it was ready", in.name()))
			return true
		}
	}
}

// start spawns the process.
func (in *instance) start() (*proc, error) {
	env := append([]string(nil), in.spec.Env...)
	path := defaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	cmd := exec.Command("/bin/sh", "-c", shellCommand(in.spec.Command, path, in.dir))
	cmd.Dir = in.dir
	if in.spec.Web {
		env = append(env, "PORT="+strconv.Itoa(in.port))
	}
	env = append(env, "PROC_TYPE="+in.spec.Kind, "PIKU_INSTANCE="+strconv.Itoa(in.n))
	cmd.Env = env
	// The output goes through a FIFO that outlives the daemon (adopt.go),
	// or a plain pipe when the supervisor has no output folder.
	fifo := in.s.outputPath(in.app, in.spec.Kind, in.n, in.gen)
	var r, w *os.File
	var err error
	if fifo != "" {
		if err = os.MkdirAll(filepath.Dir(fifo), 0o700); err == nil {
			r, w, err = procgroup.OutputFIFO(fifo)
		}
		if err != nil {
			// A full disk, say: the process still starts, on a plain
			// pipe, but it will not outlive the daemon.
			in.log.Warn("cannot make the output FIFO: using a pipe, so the process will not survive a crash of the daemon", "err", err)
			fifo = ""
		}
	}
	if fifo == "" {
		r, w, err = os.Pipe()
	}
	if err != nil {
		return nil, spawnError(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	in.noteOOM()
	// Started and recorded in the state file together, before a Freeze.
	in.s.startMu.RLock()
	defer in.s.startMu.RUnlock()
	pg, err := procgroup.StartOutliving(cmd)
	_ = w.Close()
	if err != nil {
		_ = r.Close()
		if fifo != "" {
			_ = os.Remove(fifo)
		}
		return nil, spawnError(err)
	}
	p := &proc{Process: pg, copied: make(chan struct{}), out: r, fifo: fifo}
	pid := pg.Pid()
	_, st, _ := procgroup.Stat(pid)
	restarts := in.snapshotRestarts()
	in.s.state.add(liveProc{App: in.app, Kind: in.spec.Kind, N: in.n, PID: pid, PGID: p.PGID, Start: st, Token: p.Token,
		Supervised: true, Gen: in.gen, Port: in.port, Addr: in.address(), Fixed: in.fixed, Spec: in.digest,
		Revision: in.revision, Dir: in.dir, Started: p.Started, Restarts: restarts, Output: fifo})
	in.copy(p)
	state := StateStarting
	in.update(func(s *InstanceStatus) {
		s.State, s.PID, s.StartedAt, s.HealthFailures = state, pid, p.Started, 0
	})
	in.log.Info("started", "pid", pid)
	return p, nil
}

// snapshotRestarts is the instance's restart count.
func (in *instance) snapshotRestarts() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.status.Restarts
}

// copy copies p's output to the instance's log until it ends, then
// closes p.copied.
func (in *instance) copy(p *proc) {
	w := in.s.logs.open(in.logPath, LogPolicy{}) // shares the writer opened at creation
	go func() {
		defer close(p.copied)
		in.copyOutput(w, p.out)
		_ = p.out.Close()
		in.s.logs.close(in.logPath)
	}()
}

// spawnError says plainly when a process could not be started because the
// daemon ran out of file descriptors, the one cause the app cannot fix.
func spawnError(err error) error {
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		return fmt.Errorf("the daemon is out of file descriptors (raise the service's LimitNOFILE): %w", err)
	}
	return err
}

// finish cleans up after the process leader exited: what is left of its
// group is killed (no orphans), the output copier is awaited and the
// process leaves the state file.
func (in *instance) finish(p *proc) {
	_ = p.Signal(syscall.SIGKILL)
	// A process that left the group may still hold the pipe: give the
	// copier a moment, then cut it off.
	if p.out != nil {
		_ = p.out.SetReadDeadline(time.Now().Add(2 * time.Second))
	}
	<-p.copied
	if p.fifo != "" {
		_ = os.Remove(p.fifo)
	}
	in.s.state.remove(p.Pid())
}

// terminate stops p: SIGTERM to the group, SIGKILL after the stop timeout
// (or at once when asked to), and waits for it.
func (in *instance) terminate(p *proc) {
	in.update(func(st *InstanceStatus) { st.State = StateStopping })
	if p.Stop(in.policy.StopTimeout, in.kill) {
		select {
		case <-in.kill:
		default:
			in.log.Warn("did not stop in time, killed", "pid", p.Pid(), "timeout", in.policy.StopTimeout)
		}
	}
	in.finish(p)
	last := p.Exit()
	code := p.ExitCode()
	in.log.Info("stopped", "pid", p.Pid(), "status", last)
	in.update(func(st *InstanceStatus) {
		st.State, st.PID, st.LastExit, st.ExitCode, st.NextRetry = StateStopped, 0, last, code, time.Time{}
	})
}

// shellCommand returns what /bin/sh -c runs for command: a simple command
// (no shell syntax beyond words and quotes) whose first word is a program
// found on path (or, with a slash, an executable file, relative to dir) is
// prefixed with exec, so the program replaces the shell and gets signals
// itself. Anything else (a builtin such as exit, :, wait or unset, an
// assignment, a keyword) runs as written.
func shellCommand(command, path, dir string) string {
	c := strings.TrimSpace(command)
	// Variable references ($PORT, ${PORT}) are plain words to exec; any
	// other shell syntax needs the shell to stay.
	words := varRef.ReplaceAllString(c, "")
	if c == "" || strings.ContainsAny(words, ";&|`$()<>\n\\{}!#") {
		return command
	}
	first, ok := firstWord(c)
	if !ok || strings.Contains(first, "=") {
		return command // FOO=bar cmd: an assignment, exec would take it for the program
	}
	switch first {
	case "exec", "if", "for", "while", "until", "case", "cd", "export", ".", "source", "set", "eval", "trap",
		"ulimit", "umask", "exit", "return", "command", "wait", "unset", "shift", "read", "readonly", "local",
		"alias", "unalias", "type", "hash", "getopts", "jobs", "fg", "bg", "times", "break", "continue":
		return command
	}
	if !isProgram(first, path, dir) {
		return command
	}
	return "exec " + c
}

// defaultPath is where sh looks for programs when the environment has no
// PATH.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// firstWord returns the first word of c, without its quotes when it is
// quoted as a whole ('my prog' or "my prog"); ok is false when it is
// not a plain word.
func firstWord(c string) (string, bool) {
	if c[0] == '\'' || c[0] == '"' {
		end := strings.IndexByte(c[1:], c[0])
		if end < 0 {
			return "", false
		}
		rest := c[end+2:]
		if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
			return "", false
		}
		return c[1 : end+1], true
	}
	first := c
	if i := strings.IndexAny(c, " \t"); i >= 0 {
		first = c[:i]
	}
	if strings.ContainsAny(first, "'\"") {
		return "", false
	}
	return first, true
}

// isProgram reports whether name is an executable file: looked up in the
// directories of path, or, when it has a slash, taken relative to dir.
func isProgram(name, path, dir string) bool {
	executable := func(p string) bool {
		fi, err := os.Stat(p)
		return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
	}
	if strings.Contains(name, "/") {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		return executable(name)
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		if executable(filepath.Join(d, name)) {
			return true
		}
	}
	return false
}

// varRef matches $NAME and ${NAME}.
var varRef = regexp.MustCompile(`\$(?:[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*\})`)

// logPath returns where instance n of kind writes.
func logPath(dir, kind string, n int) string {
	return filepath.Join(dir, kind+"."+strconv.Itoa(n)+".log")
}
