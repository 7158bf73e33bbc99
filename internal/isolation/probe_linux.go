package isolation

import (
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Report is what this machine offers for keeping apps apart, as
// `piku doctor` shows it. It only looks: it creates no cgroup.
type Report struct {
	// Mode is how a daemon started now would enforce apps' limits.
	Mode Mode `json:"mode"`
	// Controllers are the cgroup controllers it would use.
	Controllers []string `json:"controllers"`
	// Cgroups describes the cgroup file systems: "v2", "v1", "v1 with
	// an empty cgroup2 mount" or "none".
	Cgroups string `json:"cgroups"`
	// Why says what keeps a stronger mode from being used.
	Why string `json:"why,omitempty"`
	// LandlockABI is the kernel's Landlock ABI version, 0 when it has
	// none; LandlockWhy says why.
	LandlockABI int    `json:"landlock_abi"`
	LandlockWhy string `json:"landlock_why,omitempty"`
	// LSMs are the kernel's active security modules.
	LSMs []string `json:"lsms,omitempty"`
}

// Probe reports what the cgroup file systems under fsRoot
// (/sys/fs/cgroup) and the kernel offer to the calling process.
func Probe(fsRoot string) Report {
	r := Report{Mode: ModeBestEffort, Cgroups: cgroupLayout(fsRoot)}
	own, err := ownCgroups()
	if err != nil {
		r.Why = err.Error()
	} else {
		r.Mode, r.Controllers, r.Why = probeCgroups(fsRoot, own)
	}
	r.LandlockABI, r.LandlockWhy = landlockABI()
	if b, err := os.ReadFile("/sys/kernel/security/lsm"); err == nil {
		r.LSMs = strings.Split(strings.TrimSpace(string(b)), ",")
	}
	return r
}

func cgroupLayout(fsRoot string) string {
	_, v2 := os.Stat(filepath.Join(fsRoot, "cgroup.controllers"))
	if v2 == nil {
		return "v2"
	}
	var v1 bool
	for _, ctrl := range v1Controllers {
		if _, err := os.Stat(filepath.Join(fsRoot, ctrl, "cgroup.procs")); err == nil {
			v1 = true
		}
	}
	if !v1 {
		return "none"
	}
	if b, err := os.ReadFile(filepath.Join(fsRoot, "unified", "cgroup.controllers")); err == nil {
		if strings.TrimSpace(string(b)) == "" {
			return "v1 with an empty cgroup2 mount"
		}
		return "v1 and v2 (hybrid)"
	}
	return "v1"
}

// probeCgroups is DetectCgroups without creating anything: what a
// daemon in the cgroups own would use.
func probeCgroups(fsRoot string, own map[string]string) (Mode, []string, string) {
	var why []string
	if p, ok := own[""]; ok {
		dir := filepath.Join(fsRoot, p)
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
		switch {
		case err != nil:
			why = append(why, "cgroup v2: no controllers at "+dir)
		case unix.Access(dir, unix.W_OK) != nil:
			why = append(why, "cgroup v2: "+dir+" is not writable (delegate it: Delegate=yes)")
		default:
			have := strings.Fields(string(b))
			missing := false
			for _, want := range []string{"memory", "cpu", "pids"} {
				if !contains(have, want) {
					why = append(why, "cgroup v2: controller "+want+" not delegated to "+dir)
					missing = true
				}
			}
			if !missing {
				return ModeCgroupV2, []string{"memory", "cpu", "pids"}, ""
			}
		}
	}
	var ctrls []string
	for _, ctrl := range v1Controllers {
		p, ok := own[ctrl]
		if !ok {
			why = append(why, ctrl+": no cgroup v1 hierarchy")
			continue
		}
		dir := filepath.Join(fsRoot, ctrl, p)
		if err := unix.Access(dir, unix.W_OK); err != nil {
			why = append(why, ctrl+": "+dir+" is not writable")
			continue
		}
		ctrls = append(ctrls, ctrl)
	}
	if len(ctrls) > 0 {
		return ModeCgroupV1, ctrls, strings.Join(why, "; ")
	}
	return ModeBestEffort, nil, strings.Join(why, "; ")
}

// landlockCreateRulesetVersion asks landlock_create_ruleset for the ABI
// version.
const landlockCreateRulesetVersion = 1

// landlockABI returns the kernel's Landlock ABI version, or 0 and why
// there is none.
func landlockABI() (int, string) {
	abi, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, landlockCreateRulesetVersion)
	switch errno {
	case 0:
		return int(abi), ""
	case unix.ENOSYS:
		return 0, "the kernel has no Landlock (built without it, or older than 5.13)"
	case unix.EOPNOTSUPP:
		return 0, "Landlock is built in but not enabled (add landlock to the lsm= boot parameter)"
	default:
		return 0, "landlock_create_ruleset: " + errno.Error()
	}
}
