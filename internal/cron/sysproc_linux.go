package cron

import "syscall"

// sysProcAttr puts a run in its own process group and kills it if the
// daemon dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
