package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/isolation"
	"github.com/piku/piku/internal/layout"
)

// cli is the state shared by the commands: where PIKU_ROOT is and the
// standard streams.
type cli struct {
	rootDir string
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
}

func newCLI(stdin io.Reader, stdout, stderr io.Writer) *cli {
	return &cli{stdin: stdin, stdout: stdout, stderr: stderr}
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "piku",
		Short: "The tiniest PaaS you've ever seen: git push deploys to your own server",
		Long: `piku deploys apps with git push to a small server, runs their Procfile
processes under its own supervisor and serves them through its built-in
reverse proxy. Commands that name an APP act on that app under PIKU_ROOT.`,
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		// An app's processes may not act on apps through the binary,
		// as they may not through the control socket.
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			switch cmd.Name() {
			case "version", "help", "completion", isolation.ConfineSubcommand:
				return nil
			case "daemon":
				// The daemon's check of its successor before a restart
				// in place runs as its child; it reads settings only.
				if check, _ := cmd.Flags().GetBool("check-settings"); check {
					return nil
				}
			}
			return isolation.CheckSelf()
		},
	}
	root.SetIn(c.stdin)
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.PersistentFlags().StringVar(&c.rootDir, "root", envOr("PIKU_ROOT", ""),
		"PIKU_ROOT, where piku keeps apps, repos, envs and logs (default ~/.piku) [$PIKU_ROOT]")
	// Read by clientTarget before cobra runs; declared here so that help
	// shows them and a server-side command line may carry them.
	root.PersistentFlags().Bool("local", false, "run on this machine, not over ssh on the server of the checkout's piku remote")
	root.PersistentFlags().String("remote", "", "the git remote naming the server and app (default piku) [$PIKU_SERVER, $PIKU_APP]")
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddGroup(&cobra.Group{ID: "apps", Title: "App commands:"},
		&cobra.Group{ID: "server", Title: "Server commands:"})
	for _, cmd := range []*cobra.Command{
		c.appsCommand(), c.configCommand(), c.configGetCommand(), c.configSetCommand(),
		c.configUnsetCommand(), c.configLiveCommand(), c.deployCommand(), c.destroyCommand(),
		c.logsCommand(), c.maintenanceOnCommand(), c.maintenanceOffCommand(), c.psCommand(), c.psScaleCommand(), c.restartCommand(), c.stopCommand(),
		c.startCommand(), c.runCommand(), c.releasesCommand(), c.rollbackCommand(), c.topCommand(),
	} {
		cmd.GroupID = "apps"
		root.AddCommand(cmd)
	}
	for _, cmd := range []*cobra.Command{c.setupCommand(), c.setupSSHCommand(), c.initCommand(), c.daemonCommand(), c.serviceCommand(), c.migrateCommand(), c.doctorCommand(), c.versionCommand(), c.completionCommand()} {
		cmd.GroupID = "server"
		root.AddCommand(cmd)
	}
	root.AddCommand(c.gitReceivePackCommand(), c.gitUploadPackCommand(), c.gitHookCommand(), c.confineCommand(), c.handoverGuardCommand())
	c.completeArgs(root)
	withUsage(root)
	return root
}

// withUsage makes the argument checks of cmd and its subcommands say how
// the command is used.
func withUsage(cmd *cobra.Command) {
	if check := cmd.Args; check != nil {
		cmd.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return fmt.Errorf("%w\nusage: %s", err, cmd.UseLine())
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		withUsage(sub)
	}
}

// root returns the PIKU_ROOT layout.
func (c *cli) root() (layout.Root, error) {
	if c.rootDir != "" {
		return layout.New(c.rootDir)
	}
	return layout.FromEnv()
}

// client returns a control client for the daemon of root.
func (c *cli) client(root layout.Root) *control.Client {
	return control.NewClient(root.Socket())
}

// appArg validates an APP argument and returns the root it lives in.
func (c *cli) appArg(name string) (layout.Root, string, error) {
	if err := layout.ValidateApp(name); err != nil {
		return layout.Root{}, "", err
	}
	root, err := c.root()
	if err != nil {
		return layout.Root{}, "", err
	}
	return root, name, nil
}

// deployedApp is appArg for an app that must exist.
func (c *cli) deployedApp(name string) (layout.Root, string, error) {
	root, app, err := c.appArg(name)
	if err != nil {
		return root, app, err
	}
	if !root.Exists(app) {
		return root, app, &ExitError{Code: 1, Msg: "app " + quote(app) + " not found"}
	}
	return root, app, nil
}

// signalContext is a context cancelled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func quote(s string) string { return "'" + s + "'" }
