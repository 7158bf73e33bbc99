package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/supervisor"
)

// guardWait is how long Guard waits for the new image: its exec and the
// start of its first packages take milliseconds.
var guardWait = 30 * time.Second

// GuardSubcommand is the hidden command that runs Guard: the image that
// restarts in place starts `EXE __handover-guard` just before its exec.
const GuardSubcommand = "__handover-guard"

// startGuard starts the guard of a restart in place (Guard), in a session
// of its own (the terminal's signals and a stop of the daemon's group do
// not reach it; the next image's orphan reaper reaps it), with the read
// end of a pipe. It returns the write end, which the next image inherits
// and writes on once it catches stop signals (earlysignal.GuardEnv).
func startGuard(exe string, root layout.Root) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("starting the handover guard: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe, "--root", root.Dir(), GuardSubcommand)
	cmd.ExtraFiles = []*os.File{r}                // descriptor 3
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr // the daemon's log, as its own
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("starting the handover guard: %w", err)
	}
	_ = cmd.Process.Release()
	return w, nil
}

// releaseGuard tells the guard that a daemon is in charge (w nil: none
// was started).
func releaseGuard(w *os.File) {
	if w == nil {
		return
	}
	_, _ = w.Write([]byte{'k'})
	_ = w.Close()
}

// Guard covers the moments of a restart in place in which a stop signal
// would end the daemon without stopping the apps: from the old image's
// last check to the new image's catch of SIGINT and SIGTERM
// (earlysignal). It waits on r, a pipe whose write end the daemon holds
// across its exec: a byte says a daemon image is in charge, and Guard
// returns. The end of the pipe without one says the daemon ended in
// those moments (a stop signal, or a kill): nobody will stop the apps
// nor adopt them before the next start, so Guard stops every process the
// state file lists, apps and cron runs, as a stop would (SIGTERM to each
// group, SIGKILL after the stop timeout).
//
// A daemon image that neither says so nor ends within guardWait is in
// charge all the same (a binary from before the guard, which never
// writes the byte): Guard then leaves, so that the apps are never stopped
// long after the exec, by the end of a daemon that could adopt them.
func Guard(root layout.Root, r *os.File, log *slog.Logger) error {
	said := make(chan bool, 1)
	go func() { // ends with the process when guardWait passes first
		buf := make([]byte, 1)
		n, _ := r.Read(buf)
		said <- n == 1
	}()
	t := time.NewTimer(guardWait)
	defer t.Stop()
	select {
	case ok := <-said:
		if ok {
			return nil
		}
	case <-t.C:
		log.Info("the daemon's new image neither said it is in charge nor ended: leaving the apps to it", "waited", guardWait)
		return nil
	}
	log.Warn("the daemon ended during its restart in place, before it could catch a stop signal: stopping every app, as its stop would have")
	s, err := supervisor.New(supervisor.Options{
		Logger:    log.With("part", "supervisor"),
		Router:    noRoutes{},
		Ports:     supervisor.PortRange{Bind: "127.0.0.1", Min: 1024, Max: 65535},
		StateFile: root.ProcessStateFile(),
		OutputDir: root.OutputDir(),
	})
	if err != nil {
		return fmt.Errorf("handover guard: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, run := range s.LeftRuns() {
			log.Info("stopping a cron run", "app", run.App, "job", run.Name, "pid", run.Process.Pid())
			run.Process.Stop(supervisor.DefaultStopTimeout, nil)
			run.Done()
		}
	}()
	s.StopUnclaimed(context.Background())
	<-done
	log.Info("every app stopped")
	return nil
}

// noRoutes is the guard's router: there is no proxy to route.
type noRoutes struct{}

func (noRoutes) Route(string, []string)              {}
func (noRoutes) Drain(context.Context, []string) int { return 0 }

var _ supervisor.Router = noRoutes{}
