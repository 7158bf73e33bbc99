package cli

import (
	"os"
	"syscall"
)

// hookDiesWithParent asks the kernel to send this process SIGTERM when its
// parent (git-receive-pack) exits, and sends it at once if the parent is
// already gone.
func hookDiesWithParent() {
	parent := os.Getppid()
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0)
	if os.Getppid() != parent {
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}
}
