package cli

import (
	"context"
	"errors"
	"fmt"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/isolation"
	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/procgroup"
)

func (c *cli) runCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "run APP [--] COMMAND [ARG...]",
		Short: "Run a command in the app's directory and environment; its exit code is piku's",
		Long: `Run a command in the app's directory and environment; its exit code is piku's.
The words after APP (and an optional --) are the command and its arguments,
passed as given. A single word is a shell line, run by /bin/sh -c, as
heroku run does: piku run APP 'ls | wc -l'.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				return nil
			}
			return cobra.MinimumNArgs(2)(cmd, args)
		},
		// Everything after APP belongs to the command, flags included.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] == "-h" || args[0] == "--help" {
				return cmd.Help()
			}
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			rest := args[1:]
			if len(rest) > 0 && rest[0] == "--" {
				rest = rest[1:]
			}
			if len(rest) == 0 {
				return errors.New("no command given: piku run APP -- COMMAND")
			}
			a, err := appconfig.Load(root, app)
			if err != nil {
				return err
			}
			sh := exec.Command("/bin/sh", runShellArgs(rest)...)
			sh.Dir = a.Dir
			// What piku run starts is the app's: marked as its
			// processes are, so that the control socket and the piku
			// command refuse it, and kept below this process (as
			// subreaper) when it daemonises, while piku run lasts.
			sh.Env = append(a.Env.Environ(), procgroup.TagVar+"=run")
			// It counts against the app's limits (this process joins
			// the app's cgroups, so all it starts is in them) and is
			// confined to the app's files as its processes are.
			c.joinAppCgroups(root, app)
			sh.Env = append(sh.Env, isolation.ConfineEnv(root, app, a.Env.Get)...)
			// It gets the app's limits per process (core file size,
			// and the nice value PIKU_NICE gives `run`, or every kind),
			// set by its prelude before it runs anything, as the app's
			// processes do.
			limits, err := isolation.ParseLimits(a.Env.Get)
			if err != nil {
				return fmt.Errorf("app %q: ENV: %w", app, err)
			}
			sh.Env = append(sh.Env, limits.ProcessEnv(isolation.RunKind)...)
			procgroup.Prelude(sh)
			_ = procgroup.BecomeSubreaper()
			sh.Stdin, sh.Stdout, sh.Stderr = c.stdin, c.stdout, c.stderr
			err = sh.Run()
			var xe *exec.ExitError
			if errors.As(err, &xe) {
				return &ExitError{Code: xe.ExitCode()}
			}
			return err
		},
	}
}

// joinAppCgroups moves this process into app's cgroups, where the running
// daemon keeps them; without them (no daemon, best-effort mode) the
// command runs outside any, and a failure to join is said, not fatal.
func (c *cli) joinAppCgroups(root layout.Root, app string) {
	info, err := c.client(root).Ping(context.Background())
	if err != nil {
		return
	}
	if _, err := isolation.JoinAppCgroups("/sys/fs/cgroup", root.Dir(), app, info.PID); err != nil {
		fmt.Fprintf(c.stderr, "piku run: %v: the command runs outside the app's limits\n", err)
	}
}

// runShellArgs returns the arguments of /bin/sh for `piku run`: one word is
// a shell line; several are a command and its arguments, which the shell
// looks up in the app's PATH and execs without re-parsing them.
func runShellArgs(words []string) []string {
	if len(words) == 1 {
		return []string{"-c", words[0]}
	}
	return append([]string{"-c", `exec "$@"`, "sh"}, words...)
}
