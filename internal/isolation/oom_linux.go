package isolation

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/piku/piku/internal/procgroup"
)

// DaemonOOMScoreAdj is the oom_score_adj the daemon gives itself (and the
// service unit's OOMScoreAdjust): far below its apps' (AppOOMScoreAdj),
// so that the kernel's OOM killer takes a misbehaving app, never the
// daemon that proxies every app. It is not -1000, which would exempt the
// daemon even from its own runaway.
const DaemonOOMScoreAdj = -900

// ProtectDaemon lowers the calling process's oom_score_adj to
// DaemonOOMScoreAdj, which needs root or CAP_SYS_RESOURCE unless the
// service manager set it already (OOMScoreAdjust=). It returns the score
// the process has afterwards and, when that is not as low as asked, why.
// The apps it starts raise theirs to procgroup.AppOOMScoreAdj either way.
func ProtectDaemon() (int, error) {
	pid := os.Getpid()
	cur, err := procgroup.OOMScoreAdj(pid)
	if err != nil {
		return 0, fmt.Errorf("reading the daemon's oom_score_adj: %w", err)
	}
	if cur <= DaemonOOMScoreAdj {
		return cur, nil
	}
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(DaemonOOMScoreAdj)), 0); err != nil {
		return cur, fmt.Errorf("lowering the daemon's oom_score_adj to %d (needs root or CAP_SYS_RESOURCE, or OOMScoreAdjust=%d in the service unit): %w",
			DaemonOOMScoreAdj, DaemonOOMScoreAdj, err)
	}
	return procgroup.OOMScoreAdj(pid)
}

// LogProtectDaemon runs ProtectDaemon and says what came of it on log.
func LogProtectDaemon(log *slog.Logger) {
	score, err := ProtectDaemon()
	if err != nil {
		log.Warn("the OOM killer may pick the daemon: its oom_score_adj stays "+strconv.Itoa(score)+"; apps get "+strconv.Itoa(procgroup.AppOOMScoreAdj), "err", err)
		return
	}
	log.Info("OOM killer aimed at apps", "daemon_oom_score_adj", score, "app_oom_score_adj", procgroup.AppOOMScoreAdj)
}
