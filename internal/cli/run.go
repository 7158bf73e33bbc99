package cli

import (
	"errors"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/appconfig"
)

func (c *cli) runCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "run APP -- COMMAND...",
		Short: "Run a command in the app's directory and environment; its exit code is piku's",
		Args:  cobra.MinimumNArgs(2),
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
			// As piku does, the words are joined and run by the shell, so
			// `piku run app -- 'ls | wc -l'` works.
			sh := exec.Command("/bin/sh", "-c", strings.Join(rest, " "))
			sh.Dir = a.Dir
			sh.Env = a.Env.Environ()
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
