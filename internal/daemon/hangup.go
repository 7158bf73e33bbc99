package daemon

import (
	"os"
	"os/signal"
	"syscall"
)

// notifyHangup returns a channel that receives the daemon's SIGHUPs, which
// then no longer end the process. (A handler, not SIG_IGN: an ignored
// signal would stay ignored in every app the daemon starts.)
func notifyHangup() chan os.Signal {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c
}

// stopHangup undoes notifyHangup, once the daemon has stopped.
func stopHangup(c chan os.Signal) { signal.Stop(c) }
