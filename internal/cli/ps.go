package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/isolation"
)

func (c *cli) psCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ps APP",
		Short: "Show the app's processes: state, pid, port, uptime, restarts, last exit, memory, revision",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			st, err := c.client(root).Status(context.Background(), app)
			if control.IsNotRunning(err) {
				counts, serr := appconfig.ReadScaling(root, app)
				if serr == nil && len(counts) > 0 {
					fmt.Fprintln(c.stdout, "Scaling (from SCALING; nothing is running):")
					for k, n := range counts {
						fmt.Fprintf(c.stdout, "%s:%d\n", k, n)
					}
				}
				return err
			}
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.stdout, st)
			}
			printStatus(c, st, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the live state as JSON")
	return cmd
}

func printStatus(c *cli, st control.AppStatus, now time.Time) {
	if st.Stopped {
		fmt.Fprintf(c.stdout, "app '%s' is stopped (start it with `piku start %s`)\n", st.App, st.App)
	}
	if m := st.Maintenance; m != nil {
		stopped := ""
		if m.Stop {
			stopped = " with its processes stopped"
		}
		msg := ""
		if m.Message != "" {
			msg = fmt.Sprintf(" (message: %q)", m.Message)
		}
		fmt.Fprintf(c.stdout, "app '%s' is in maintenance%s: every request gets a 503%s; end it with `piku maintenance:off %s`\n", st.App, stopped, msg, st.App)
	}
	if st.Error != "" {
		fmt.Fprintf(c.stdout, "app '%s' could not be started: %s\n", st.App, st.Error)
	}
	if len(st.Instances) > 0 {
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		p := painter(colourOn(c.stdout))
		fmt.Fprintf(tw, "PROCESS\t%s\tPID\tPORT\tUPTIME\tRESTARTS\tLAST EXIT\tRSS\tREVISION\n", p.paint(sgrPlain, "STATE"))
		for _, in := range st.Instances {
			state := in.State
			if !in.NextRetry.IsZero() && in.NextRetry.After(now) {
				state += " (retry in " + short(in.NextRetry.Sub(now)) + ")"
			}
			if in.HealthFailures > 0 && in.State == "running" {
				state += fmt.Sprintf(" (health check failed %dx)", in.HealthFailures)
			}
			state = p.paint(stateColour(in.State), state)
			fmt.Fprintf(tw, "%s.%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n",
				in.Kind, in.N, state, dash(in.PID), dash(in.Port), uptime(in, now),
				in.Restarts, orDash(in.LastExit), rss(in.RSS), orDash(shortRev(in.Revision)))
		}
		tw.Flush()
		for _, in := range st.Instances {
			switch {
			case in.LogError != "":
				fmt.Fprintf(c.stdout, "%s.%d: its log cannot be written (%s): %s of output dropped so far\n",
					in.Kind, in.N, in.LogError, rss(in.LogDropped))
			case in.LogDropped > 0:
				fmt.Fprintf(c.stdout, "%s.%d: %s of output were dropped while its log could not be written\n",
					in.Kind, in.N, rss(in.LogDropped))
			}
			if in.LogRateDropped > 0 {
				fmt.Fprintf(c.stdout, "%s.%d: %s of output dropped: more than the app's rate (PIKU_LOG_RATE)\n",
					in.Kind, in.N, rss(in.LogRateDropped))
			}
			if in.LastHealthError != "" {
				fmt.Fprintf(c.stdout, "%s.%d: restarted when its %s\n", in.Kind, in.N, in.LastHealthError)
			}
		}
	}
	if st.Limits != nil {
		for _, line := range limitsText(*st.Limits) {
			fmt.Fprintln(c.stdout, line)
		}
	}
	if len(st.Rollouts) > 0 {
		var parts []string
		for _, kind := range slices.Sorted(maps.Keys(st.Rollouts)) {
			parts = append(parts, kind+": "+st.Rollouts[kind])
		}
		fmt.Fprintf(c.stdout, "last rollout: %s\n", strings.Join(parts, ", "))
	}
	if st.Held > 0 {
		fmt.Fprintf(c.stdout, "held: %d requests wait for the app (it is starting, waking or running its release)\n", st.Held)
	}
	if len(st.Cron) > 0 {
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CRON\tSCHEDULE\tNEXT RUN\tLAST RUN\tLAST EXIT")
		for _, j := range st.Cron {
			last := "-"
			if !j.LastRun.IsZero() {
				last = j.LastRun.Local().Format("2006-01-02 15:04:05")
			}
			next := "-"
			if j.Running {
				next = "running now"
			} else if !j.NextRun.IsZero() {
				next = j.NextRun.Local().Format("2006-01-02 15:04:05")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", j.Name, j.Schedule, next, last, orDash(j.LastExit))
		}
		tw.Flush()
	}
	if len(st.Instances) == 0 && len(st.Cron) == 0 && !st.Stopped && st.Maintenance == nil && st.Error == "" {
		fmt.Fprintf(c.stdout, "app '%s' has no processes running\n", st.App)
	}
}

// limitsText says what the app may use and uses, as the server enforces
// it, in a line, and a second one when the OOM killer ended some of the
// app's processes. It never calls a limit enforced that is not.
func limitsText(l control.Limits) []string {
	var out []string
	if l.Mode == "best effort" {
		line := fmt.Sprintf("limits (best effort: limits not enforced): asked for %s; only the limits per process are enforced", l.Asked)
		if l.MemoryMax > 0 {
			line += fmt.Sprintf("; memory %s in all, watched: over %s the biggest instance is killed and restarted",
				rss(l.MemoryBytes), isolation.FormatSize(l.MemoryMax))
		}
		out = append(out, line)
		if pp := perProcessText(l); pp != "" {
			out = append(out, pp)
		}
		if l.OOMKills > 0 {
			out = append(out, fmt.Sprintf("out of memory: the memory watchdog killed %d of the app's instances over the %s memory limit",
				l.OOMKills, isolation.FormatSize(l.MemoryMax)))
		}
	} else {
		out = append(out, cgroupLimitsText(l)...)
	}
	if l.OutputDropped > 0 {
		out = append(out, fmt.Sprintf("output: %d bytes dropped since the daemon started, over the app's rate of %s/s (PIKU_LOG_RATE)",
			l.OutputDropped, isolation.FormatSize(l.OutputRate)))
	}
	return out
}

// cgroupLimitsText is limitsText's lines for the limits an app's cgroup
// enforces.
func cgroupLimitsText(l control.Limits) []string {
	of := func(use, limit string) string {
		if limit == "" {
			return use + " (no limit)"
		}
		return use + " of " + limit
	}
	mem := ""
	if l.MemoryMax > 0 {
		mem = isolation.FormatSize(l.MemoryMax)
	}
	m := "memory " + of(rss(l.MemoryBytes), mem)
	if l.MemoryHigh > 0 {
		m += " (soft " + isolation.FormatSize(l.MemoryHigh) + ")"
	}
	pids := ""
	if l.PidsMax > 0 {
		pids = fmt.Sprint(l.PidsMax)
	}
	cpu := fmt.Sprintf("CPU weight %d", l.CPUWeight)
	if l.CPUMax > 0 {
		cpu += fmt.Sprintf(", at most %s CPUs", strconv.FormatFloat(l.CPUMax, 'f', -1, 64))
	}
	if l.CPUSeconds > 0 {
		cpu += fmt.Sprintf(", %.2fs used", l.CPUSeconds)
	}
	parts := []string{m, "processes " + of(fmt.Sprint(l.Pids), pids), cpu}
	out := []string{fmt.Sprintf("limits (%s): %s", l.Mode, strings.Join(parts, ", "))}
	if pp := perProcessText(l); pp != "" {
		out = append(out, pp)
	}
	if l.OOMKills > 0 {
		at := ""
		if l.MemoryMax > 0 {
			at = " at the " + isolation.FormatSize(l.MemoryMax) + " memory limit"
		}
		out = append(out, fmt.Sprintf("out of memory: the kernel killed %d of the app's processes%s", l.OOMKills, at))
	}
	return out
}

// perProcessText is the line of the limits each of the app's processes
// has, which every mode enforces, as read from running ones: "per
// process: open files 1024, core files none, nice web=0 worker=10"; ""
// while none runs.
func perProcessText(l control.Limits) string {
	var parts []string
	if l.OpenFiles > 0 {
		parts = append(parts, fmt.Sprintf("open files %d", l.OpenFiles))
	}
	if l.CoreMax != nil {
		switch n := *l.CoreMax; {
		case n < 0:
			parts = append(parts, "core files unlimited")
		case n == 0:
			parts = append(parts, "core files none")
		default:
			parts = append(parts, "core files up to "+isolation.FormatSize(n))
		}
	}
	if len(l.Nice) > 0 {
		var kinds []string
		for _, k := range slices.Sorted(maps.Keys(l.Nice)) {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, l.Nice[k]))
		}
		parts = append(parts, "nice "+strings.Join(kinds, " "))
	}
	if len(parts) == 0 {
		return ""
	}
	return "per process: " + strings.Join(parts, ", ")
}

func dash(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortRev(r string) string {
	if len(r) > 7 && !strings.ContainsAny(r, " ") {
		return r[:7]
	}
	return r
}

func uptime(in control.Instance, now time.Time) string {
	if in.StartedAt.IsZero() || in.PID == 0 {
		return "-"
	}
	return short(now.Sub(in.StartedAt))
}

// short formats d as 3s, 4m12s, 2h5m or 3d4h.
func short(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

func rss(b int64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fM", float64(b)/(1<<20))
}
