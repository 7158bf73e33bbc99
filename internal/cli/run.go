package cli

import (
	"errors"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/appconfig"
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

// runShellArgs returns the arguments of /bin/sh for `piku run`: one word is
// a shell line; several are a command and its arguments, which the shell
// looks up in the app's PATH and execs without re-parsing them.
func runShellArgs(words []string) []string {
	if len(words) == 1 {
		return []string{"-c", words[0]}
	}
	return append([]string{"-c", `exec "$@"`, "sh"}, words...)
}
