// Package supervisor runs the processes of piku's apps: it turns an app's
// desired formation (AppSpec) into running processes, gives web instances
// their ports, writes their logs, restarts them when they die and rolls out
// new versions without dropping requests.
//
// # Instances
//
// Every instance (kind, ordinal N) is `/bin/sh -c COMMAND` in a process
// group of its own, in the app directory, with the app's environment plus
// PORT (web kinds), PROC_TYPE and PIKU_INSTANCE. A simple command is run
// as `exec COMMAND`, so no shell stays in between. Signals go to the whole
// group. Output goes to LOGDIR/KIND.N.log, rotated by size.
//
// One owner goroutine per instance holds its process and drives its
// states with timers; nothing polls:
//
//	starting  --ready-->  running        (web: accepts TCP or health path < 500;
//	    |                    |            others: up for a second)
//	    +------exit----------+--> exited --> backoff --timer--> starting
//	                                     \-> crash-looping --BackoffMax--> starting
//	starting --not ready within the boot timeout--> failed --ready--> running
//	any state --Stop/Apply--> stopping (SIGTERM, StopTimeout, SIGKILL) --> stopped
//
// # Restarts
//
// An instance that exits is started again after a delay: BackoffInitial
// (100ms) at first, doubled after each short run up to BackoffMax (30s),
// with ±20% jitter. A run of 10s or more counts as healthy and resets the
// delay. Five short runs in a row are a crash loop: the instance is then
// retried only every BackoffMax, and its status says "crash-looping".
// An instance is never given up for good, since piku has no operator at
// hand to restart it; the crash loop keeps the cost of a broken app low.
//
// For comparison: supervisord gives up (FATAL) after startretries=3 failed
// starts, a start counting as failed when the process dies within
// startsecs=1; its backoff grows by one second per try. systemd restarts
// after RestartSec=100ms and stops trying after StartLimitBurst=5 starts
// within StartLimitIntervalSec=10s; since v254 RestartSteps and
// RestartMaxDelaySec grow the delay up to a cap, as here. The uWSGI
// emperor throttles a vassal that respawns too fast by a delay that grows
// to a maximum (--emperor-throttle, --emperor-max-throttle) and keeps
// trying. piku follows systemd's numbers and the emperor's never-give-up.
//
// # Rollouts
//
// See Supervisor.Apply. Process groups are recorded in a state file, so a
// daemon killed with SIGKILL leaves nothing the next one cannot find: New
// stops the groups of the previous one before anything starts.
//
// Platform: Linux (process information comes from /proc).
package supervisor
