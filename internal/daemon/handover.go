package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/piku/piku/internal/earlysignal"
)

// The daemon restarts in place (SIGHUP, `piku service restart`): it runs
// the binary now at its path with --check-settings, and only if that
// succeeds stops accepting (the listening sockets stay open, so the
// kernel queues new connections in their backlog and none is refused),
// drains the requests in flight, and exec()s that binary in its own
// process: the same pid, so systemd and the apps' parent stay the same,
// and the apps stay its children. The listening sockets (HTTP, HTTPS, the
// control socket, metrics) pass to the new image as inherited file
// descriptors named in HandoverEnv; the new image takes them instead of
// binding, and adopts the apps from run/processes.json as after a crash
// (supervisor/adopt.go), but as their parent, so their exit status is
// known again. Cron runs going on are handed over too: the runner stops
// copying their output (it waits in their FIFO) and starts no run, and the
// new image's runner adopts them.

// HandoverEnv lists the listening sockets an image of the daemon hands to
// the next: "FD=KEY,FD=KEY", KEY being "tcp:ADDRESS" or "unix:PATH" as the
// settings name them.
// Its presence also tells the new image to catch stop signals from its
// start (earlysignal).
const HandoverEnv = earlysignal.Env

// checkTimeout bounds the settings check of the new binary.
const checkTimeout = 30 * time.Second

// listeners opens the daemon's listening sockets, taking those the image
// before handed over instead of binding, and hands them to the next.
type listeners struct {
	log *slog.Logger

	mu        sync.Mutex
	inherited map[string]int          // key -> fd, until claimed
	open      map[string]net.Listener // key -> listener
	stored    map[string]bool         // keys in systemd's file descriptor store
}

// inheritListeners reads HandoverEnv, and removes it from the environment
// so that no app inherits it.
func inheritListeners(log *slog.Logger) *listeners {
	return inheritFrom(log, 3)
}

// inheritFrom is inheritListeners, with the first descriptor systemd passes
// at firstFD.
func inheritFrom(log *slog.Logger, firstFD int) *listeners {
	l := &listeners{log: log, inherited: map[string]int{}, open: map[string]net.Listener{}, stored: map[string]bool{}}
	// systemd's file descriptor store first (fdstore.go); an image before
	// this one, in the same process, hands over the same sockets again.
	for key, fd := range systemdListeners(firstFD) {
		l.inherited[key] = fd
		l.stored[key] = true
	}
	v, ok := os.LookupEnv(HandoverEnv)
	if !ok {
		return l
	}
	_ = os.Unsetenv(HandoverEnv)
	for item := range strings.SplitSeq(v, ",") {
		if item == "" {
			continue // set with no socket
		}
		fdText, key, ok := strings.Cut(item, "=")
		fd, err := strconv.Atoi(fdText)
		if !ok || err != nil || fd < 3 {
			log.Warn("ignoring a handed-over socket", "item", item)
			continue
		}
		unix.CloseOnExec(fd)
		if old, ok := l.inherited[key]; ok {
			_ = unix.Close(old)
		}
		l.inherited[key] = fd
	}
	return l
}

// listen returns the listener for key: the one handed over, or else what
// bind opens.
func (l *listeners) listen(key string, bind func() (net.Listener, error)) (net.Listener, error) {
	l.mu.Lock()
	fd, ok := l.inherited[key]
	delete(l.inherited, key)
	l.mu.Unlock()
	if ok {
		f := os.NewFile(uintptr(fd), key)
		ln, err := net.FileListener(f)
		_ = f.Close()
		if err == nil {
			if u, ok := ln.(*net.UnixListener); ok {
				u.SetUnlinkOnClose(true) // as when bound here
			}
			l.log.Info("listening on a socket handed over", "socket", key)
			l.add(key, ln)
			return ln, nil
		}
		l.log.Warn("cannot use a socket handed over: binding again", "socket", key, "err", err)
	}
	ln, err := bind()
	if err != nil {
		return nil, err
	}
	l.add(key, ln)
	return ln, nil
}

func (l *listeners) add(key string, ln net.Listener) {
	l.mu.Lock()
	l.open[key] = ln
	stored := l.stored[key]
	l.stored[key] = true
	l.mu.Unlock()
	if stored || os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	if err := storeListener(key, ln); err != nil {
		l.log.Warn("cannot keep the socket in systemd's file descriptor store: a crash of the daemon will refuse connections until the next one listens", "socket", key, "err", err)
	} else {
		l.log.Info("socket kept in systemd's file descriptor store", "socket", key)
	}
}

// closeUnclaimed closes the sockets handed over that nothing asked for:
// the new settings turned them off or moved them.
func (l *listeners) closeUnclaimed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for key, fd := range l.inherited {
		l.log.Info("closing a socket handed over that the settings no longer name", "socket", key)
		_ = unix.Close(fd)
		if l.stored[key] {
			unstoreListener(key)
			delete(l.stored, key)
		}
	}
	clear(l.inherited)
}

// prepare duplicates every open listener for the next image, before the
// parts of this one close theirs (a unix socket's file is then kept), and
// returns the copies with HandoverEnv's value and the paths of the unix
// sockets' files, which a restart abandoned removes.
func (l *listeners) prepare() (files []*os.File, env string, unixPaths []string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var items []string
	keys := make([]string, 0, len(l.open))
	for key := range l.open {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		ln := l.open[key]
		fl, ok := ln.(interface{ File() (*os.File, error) })
		if !ok {
			continue
		}
		f, err := fl.File()
		if err != nil {
			for _, f := range files {
				_ = f.Close()
			}
			for _, ln := range l.open {
				if u, ok := ln.(*net.UnixListener); ok {
					u.SetUnlinkOnClose(true)
				}
			}
			return nil, "", nil, fmt.Errorf("handing over %s: %w", key, err)
		}
		if u, ok := ln.(*net.UnixListener); ok {
			u.SetUnlinkOnClose(false)
			unixPaths = append(unixPaths, u.Addr().String())
		}
		files = append(files, f)
		items = append(items, strconv.Itoa(int(f.Fd()))+"="+key)
	}
	return files, strings.Join(items, ","), unixPaths, nil
}

// successor returns the binary now at the daemon's path: after an
// upgrade, the new one.
func successor() (string, error) {
	exe, err := os.Executable() // "(deleted)" is trimmed: the file now at the path
	if err != nil {
		return "", fmt.Errorf("finding the daemon's binary: %w", err)
	}
	return exe, nil
}

// checkSuccessor runs the binary now at the daemon's path with the
// daemon's arguments and --check-settings: it must start and accept the
// settings as they are now (flags, PIKU_* variables, piku.yaml) before
// this daemon hands over to it.
func checkSuccessor(ctx context.Context) (string, error) {
	exe, err := successor()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Args = append(append([]string{os.Args[0]}, os.Args[1:]...), "--check-settings")
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, HandoverEnv+"=") })
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		if msg != "" {
			return exe, fmt.Errorf("%s --check-settings: %w: %s", exe, err, msg)
		}
		return exe, fmt.Errorf("%s --check-settings: %w", exe, err)
	}
	return exe, nil
}

// errStopBeforeExec is execSelf's answer when a stop came first.
var errStopBeforeExec = errors.New("a stop signal came before the exec: not handing over")

// stopCame reports whether the daemon was told to stop: stop ended, or
// a stop signal is waiting in sigs (caught by the daemon itself, one step
// before the stop context hears of it).
func stopCame(stop context.Context, sigs <-chan os.Signal) bool {
	return stop.Err() != nil || len(sigs) > 0
}

// signalBarrier returns once every signal the process caught before the
// call has reached the channels notified of it: the daemon sends itself
// SIGWINCH and waits for it. Go hands caught signals to the channels in
// one goroutine, the lowest number first among those caught together, so
// a SIGTERM (15) or SIGINT (2) caught before has been handed on by the
// time SIGWINCH (28) arrives. (It is bounded, should SIGWINCH never come.)
func signalBarrier() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGWINCH)
	defer signal.Stop(c)
	if syscall.Kill(os.Getpid(), syscall.SIGWINCH) != nil {
		return
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-c:
	case <-t.C:
	}
}

// execSelf replaces the daemon's image with exe, handing it files, unless
// a stop came (stopCame), which it checks last, just before the exec: it
// then returns errStopBeforeExec, and the caller stops instead. SIGHUP is
// ignored across the exec (a disposition exec keeps), so that a second
// one cannot end the process before the new image handles it again; the
// new image installs its handler before it starts any app, so no app
// inherits the ignored signal. HandoverEnv is always set, so that the new
// image catches stop signals from its start (earlysignal); guard, when
// not nil, is the write end of the handover guard's pipe (startGuard),
// which the new image inherits. It returns only on failure.
func execSelf(stop context.Context, sigs <-chan os.Signal, exe string, files []*os.File, env string, guard *os.File) error {
	envv := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, HandoverEnv+"=") || strings.HasPrefix(kv, earlysignal.GuardEnv+"=")
	})
	envv = append(envv, HandoverEnv+"="+env)
	if guard != nil {
		files = append(slices.Clip(files), guard)
		envv = append(envv, earlysignal.GuardEnv+"="+strconv.Itoa(int(guard.Fd())))
	}
	for _, f := range files {
		if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("handing over %s: %w", f.Name(), err)
		}
	}
	argv := os.Args
	// A signal caught from here on is lost with this image; the new one
	// catches them once its first packages are initialised (earlysignal).
	signalBarrier()
	if stopCame(stop, sigs) {
		return errStopBeforeExec
	}
	signal.Ignore(syscall.SIGHUP)
	err := syscall.Exec(exe, argv, envv)
	return fmt.Errorf("exec %s: %w", exe, err)
}

// errRestartBusy is the answer to a restart asked for while one is under
// way.
var errRestartBusy = errors.New("the daemon is already restarting")

// restartPlan is a checked restart in place: the binary to exec and the
// sockets to hand it.
type restartPlan struct {
	exe   string
	files []*os.File
	env   string
	// unixPaths are the files of the unix sockets handed over, which
	// this image's close keeps for the next.
	unixPaths []string
}

// abandon gives the restart up: the copies of the listening sockets are
// closed and the unix sockets' files removed, as a stop without a restart
// would have (their listeners are closed, or about to be).
func (p *restartPlan) abandon(log *slog.Logger) {
	for _, f := range p.files {
		_ = f.Close()
	}
	for _, path := range p.unixPaths {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("cannot remove a socket's file after a restart given up", "path", path, "err", err)
		}
	}
}

// askRestart is the control API's restart: the main loop checks the new
// binary and answers; on success it restarts once the answer is sent.
func (d *Daemon) askRestart(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case d.restartReq <- reply:
	case <-ctx.Done():
		return errRestartBusy
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// planRestart checks the binary now at the daemon's path and the settings,
// and duplicates the listening sockets for it. An error, logged, leaves
// this daemon serving.
func (d *Daemon) planRestart(ctx context.Context) (*restartPlan, error) {
	exe, err := checkSuccessor(ctx)
	if err == nil {
		var p restartPlan
		p.files, p.env, p.unixPaths, err = d.lis.prepare()
		if err == nil {
			p.exe = exe
			return &p, nil
		}
	}
	err = fmt.Errorf("not restarting in place: %w; this daemon goes on serving", err)
	d.log.Error(err.Error())
	return nil, err
}

// restartInPlace stops accepting (the listening sockets stay open in
// p.files, so new connections wait in their backlog), drains the requests
// in flight (long-lived streams are ended; each app's drain timeout
// bounds its requests, and the proxy's shutdown timeout all of them),
// freezes the supervisor and execs p.exe. Should the exec fail, the
// daemon exits and the apps keep running for the next one to adopt. It
// returns only when a stop (stop ended, or SIGINT or SIGTERM came) came
// before the exec: the daemon then stops as it would have, its proxy
// already stopped, the supervisor thawed.
func (d *Daemon) restartInPlace(stop context.Context, p *restartPlan, stopProxy func(), proxyDone <-chan struct{}, stopMetrics func(), metricsDone <-chan struct{}) {
	// The daemon's own ear for stop signals, beside the stop context:
	// checked just before the exec, it hears a signal one step sooner.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	d.log.Info("restarting in place: stopped accepting; draining the requests in flight", "binary", p.exe)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		d.sup.DrainAll(context.Background())
	}()
	stopProxy()
	stopMetrics()
	<-proxyDone
	<-metricsDone
	<-drained
	if stopCame(stop, sigs) {
		p.abandon(d.log)
		return
	}
	d.sup.Freeze()
	d.cron.Handover()
	// A stop signal that comes from the check below to the new image's
	// catch would end the daemon and leave the apps running: the guard
	// stops them then (Guard).
	guard, err := startGuard(p.exe, d.root)
	if err != nil {
		d.log.Warn("restarting in place without a guard: a stop signal in the moments of the exec would leave the apps running", "err", err)
	}
	d.log.Info("handing over", "binary", p.exe, "sockets", p.env)
	err = execSelf(stop, sigs, p.exe, p.files, p.env, guard)
	releaseGuard(guard) // this image goes on: stopping, or exiting below
	if errors.Is(err, errStopBeforeExec) {
		d.log.Info("a stop signal came as the daemon was handing over: not restarting")
		p.abandon(d.log)
		// The stop below ends every process, a restart that waited on
		// the freeze included; cron's runs, handed over, are stopped as
		// any run is when the runner stops.
		d.sup.Thaw()
		return
	}
	d.log.Error("restart in place failed: exiting; the apps keep running for the next daemon to adopt", "err", err)
	os.Exit(1)
}
