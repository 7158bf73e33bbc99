package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/isolation"
	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/procgroup"
)

// DoctorReport is what `piku doctor --json` prints.
type DoctorReport struct {
	// Isolation is what this server offers for keeping apps apart.
	Isolation isolation.Report `json:"isolation"`
	// Daemon is the running daemon's own protection, when it runs.
	Daemon *DoctorDaemon `json:"daemon,omitempty"`
	// Checks are the things users lose hours on, each ok or not.
	Checks []DoctorCheck `json:"checks"`
}

// DoctorDaemon describes the running daemon's own limits and OOM score.
type DoctorDaemon struct {
	PID         int    `json:"pid"`
	OOMScoreAdj int    `json:"oom_score_adj"`
	OpenFiles   string `json:"open_files"`
	Processes   string `json:"processes"`
}

// DoctorCheck is one check: its name, whether it passed and what was seen.
type DoctorCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

func (c *cli) doctorCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Say what this server enforces between apps, and check what piku needs",
		Long: `Say what this server enforces between apps (the isolation mode, the cgroups
and their controllers, the kernel's Landlock ABI, the daemon's own limits and
OOM score) and check what piku needs: the proxy's listeners bound by the
running daemon (PIKU_HTTP, PIKU_HTTPS; default :80 and :443), and who holds
them otherwise; git and uwsgi installed, the
service unit current; and for each app: its host names (NGINX_SERVER_NAME)
resolve to this machine, the programs its runtime is built with are
installed, and the ACME directory answers when apps have host names.
It exits 1 when a check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			root, err := c.root()
			if err != nil {
				return err
			}
			r := doctor(root)
			if asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				printDoctor(c, r)
			}
			for _, ch := range r.Checks {
				if !ch.OK {
					return &ExitError{Code: 1}
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func doctor(root layout.Root) DoctorReport {
	r := DoctorReport{Isolation: isolation.Probe("/sys/fs/cgroup")}
	daemonPID := 0
	if b, err := os.ReadFile(root.PidFile()); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			if score, err := procgroup.OOMScoreAdj(pid); err == nil {
				d := &DoctorDaemon{PID: pid, OOMScoreAdj: score}
				d.OpenFiles, d.Processes = procLimits(pid)
				r.Daemon = d
				daemonPID = pid
			}
		}
	}
	for _, l := range []struct{ name, env, def string }{{"HTTP", "PIKU_HTTP", ":80"}, {"HTTPS", "PIKU_HTTPS", ":443"}} {
		addr, ok := os.LookupEnv(l.env)
		if !ok {
			addr = l.def
		}
		if addr == "" {
			r.Checks = append(r.Checks, DoctorCheck{Name: l.name + " listener", OK: true, Detail: "off (" + l.env + " is empty)"})
			continue
		}
		r.Checks = append(r.Checks, listenerCheck(l.name, l.env, addr, daemonPID))
	}
	for _, prog := range []struct{ name, why string }{{"git", "pushes"}, {"uwsgi", "wsgi, jwsgi and rwsgi processes"}} {
		path, err := exec.LookPath(prog.name)
		ch := DoctorCheck{Name: prog.name, OK: err == nil, Detail: path}
		if err != nil {
			ch.Detail = "not installed: needed for " + prog.why
		}
		r.Checks = append(r.Checks, ch)
	}
	r.Checks = append(r.Checks, unitCheck(systemdUnit, root.Dir()))
	r.Checks = append(r.Checks, appChecks(root, net.DefaultResolver, localAddrs())...)
	return r
}

// listenerCheck says whether the running daemon (daemonPID; 0 when none
// runs) holds the socket listening on addr (the setting env), found through /proc as the
// port squatter check finds an instance's, and who holds it otherwise:
// another web server left running, or a second daemon, answers the
// server's clients in piku's place, and a connection test alone would
// call that fine.
func listenerCheck(name, env, addr string, daemonPID int) DoctorCheck {
	ch := DoctorCheck{Name: name + " listener"}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		ch.Detail = addr + ": " + err.Error()
		return ch
	}
	port, err := net.LookupPort("tcp", p)
	if err != nil {
		ch.Detail = addr + ": " + err.Error()
		return ch
	}
	pids, listening := procgroup.ListenerOwners(port)
	if !listening {
		ch.Detail = addr + ": nothing accepts connections (is the daemon running?)"
		return ch
	}
	if daemonPID > 0 && slices.Contains(pids, daemonPID) {
		ch.OK, ch.Detail = true, fmt.Sprintf("%s is bound by the daemon (pid %d)", addr, daemonPID)
		return ch
	}
	daemon := "not running"
	if daemonPID > 0 {
		daemon = "pid " + strconv.Itoa(daemonPID)
	}
	if len(pids) == 0 {
		ch.Detail = fmt.Sprintf("%s: port %d is held by a process this user cannot see, not by the piku daemon (%s): run piku doctor as root to see which", addr, port, daemon)
		return ch
	}
	ch.Detail = fmt.Sprintf("%s: port %d is held by pid %d (%s), not by the piku daemon (%s): stop it, or give piku another address (%s)",
		addr, port, pids[0], procgroup.ProcessName(pids[0]), daemon, env)
	return ch
}

// procLimits returns pid's soft limits on open files and processes, from
// /proc/PID/limits.
func procLimits(pid int) (files, procs string) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return "", ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Max open files") && len(f) > 3:
			files = f[3]
		case strings.HasPrefix(line, "Max processes") && len(f) > 2:
			procs = f[2]
		}
	}
	return files, procs
}

func printDoctor(c *cli, r DoctorReport) {
	iso := r.Isolation
	mode := string(iso.Mode)
	if len(iso.Controllers) > 0 {
		mode += " (" + strings.Join(iso.Controllers, ", ") + ")"
	}
	if iso.Mode == isolation.ModeBestEffort {
		mode += ": memory, CPU and process limits are NOT enforced"
	}
	fmt.Fprintf(c.stdout, "isolation  %s\n", mode)
	if iso.Why != "" {
		fmt.Fprintf(c.stdout, "           (%s)\n", iso.Why)
	}
	fmt.Fprintf(c.stdout, "cgroups    %s\n", iso.Cgroups)
	if iso.LandlockABI > 0 {
		fmt.Fprintf(c.stdout, "landlock   ABI %d: apps, their builds and release commands are confined to their own files (PIKU_LANDLOCK=off opts an app out)\n", iso.LandlockABI)
	} else {
		fmt.Fprintf(c.stdout, "landlock   none: %s\n", iso.LandlockWhy)
	}
	if d := r.Daemon; d != nil {
		fmt.Fprintf(c.stdout, "daemon     pid %d, oom_score_adj %d (apps %d), open files %s, processes %s\n",
			d.PID, d.OOMScoreAdj, procgroup.AppOOMScoreAdj, d.OpenFiles, d.Processes)
	} else {
		fmt.Fprintln(c.stdout, "daemon     not running")
	}
	for _, ch := range r.Checks {
		status := "ok  "
		if !ch.OK {
			status = "FAIL"
		}
		fmt.Fprintf(c.stdout, "%s  %s: %s\n", status, ch.Name, ch.Detail)
	}
}
