// Package earlysignal catches SIGINT and SIGTERM from the very start of an
// image of the piku daemon that a restart in place started (the previous
// image exec'd it with Env set). Until the command line sets up its own
// handling of those signals, Go's default action would end the daemon and
// leave the apps running, orphaned, with nobody to stop them.
//
// The package imports nothing but the standard library's os and
// os/signal, so that Go initialises it among the first packages of the
// binary: its window (from the exec to the catch) is about half that of a
// package with many imports (docs/PERFORMANCE.md).
package earlysignal

import (
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

// Env is set, by the image of the daemon that restarts in place, in the
// environment of the next (daemon.HandoverEnv names the same variable).
const Env = "PIKU_LISTEN_FDS"

// GuardEnv, set with Env, is the descriptor of a pipe to the guard the
// previous image started (daemon.Guard): once the signals are caught, a
// byte on it tells the guard that this image is in charge. Should this
// image end before (a signal in the moments before the catch), the guard
// reads the end of the pipe instead and stops every app, as the stop
// would have.
const GuardEnv = "PIKU_HANDOVER_GUARD"

// Stops receives the SIGINT and SIGTERM a daemon image started by a restart
// in place got from its start; nil in any other process, whose signals
// this package leaves alone. It stays registered for the process's life,
// so a later signal reaches it as well as the command line's handler.
var Stops <-chan os.Signal = catch(os.LookupEnv)

// catch registers a channel for SIGINT and SIGTERM when Env is set.
func catch(lookup func(string) (string, bool)) chan os.Signal {
	if _, ok := lookup(Env); !ok {
		return nil
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	if v, ok := lookup(GuardEnv); ok {
		_ = os.Unsetenv(GuardEnv) // for no app to inherit
		releaseGuard(v)
	}
	return c
}

// releaseGuard writes the byte that releases the guard on descriptor fd,
// and closes it.
func releaseGuard(fd string) {
	n, err := strconv.Atoi(fd)
	if err != nil || n < 3 {
		return
	}
	_, _ = syscall.Write(n, []byte{'k'})
	_ = syscall.Close(n)
}
