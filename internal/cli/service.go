package cli

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/service"
)

func (c *cli) serviceCommand() *cobra.Command {
	var userName string
	cmd := &cobra.Command{
		Use:   "service install|uninstall|start|stop|restart|status",
		Short: "Run piku as a system service (systemd): `piku daemon` as the piku user, restarted on failure",
		Long: `Manage the system service that runs ` + "`piku daemon`" + ` as the piku user (never
root), allowed to bind ports 80 and 443, restarted when it fails, with
PIKU_ROOT in its environment. install, uninstall, start, stop and restart
need root. Stopping the service stops every app gracefully; starting it
brings back every app that was not stopped.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"install", "uninstall", "start", "stop", "restart", "status"},
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := c.service(userName)
			if err != nil {
				return err
			}
			switch args[0] {
			case "install":
				err = svc.Install()
			case "uninstall":
				err = svc.Uninstall()
			case "start":
				err = svc.Start()
			case "stop":
				err = svc.Stop()
			case "restart":
				err = svc.Restart()
			case "status":
				var st string
				if st, err = svc.Status(); err == nil {
					fmt.Fprintln(c.stdout, st)
				}
				return err
			default:
				return fmt.Errorf("unknown service action %q (install, uninstall, start, stop, restart, status)", args[0])
			}
			if err == nil {
				fmt.Fprintf(c.stdout, "-----> piku service: %s done\n", args[0])
			}
			return err
		},
	}
	cmd.Flags().StringVar(&userName, "user", envOr("PIKU_USER", "piku"), "the user the daemon runs as [$PIKU_USER]")
	return cmd
}

// service returns the service for userName; PIKU_ROOT is --root, or that
// user's ~/.piku.
func (c *cli) service(userName string) (*service.Service, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	rootDir := c.rootDir
	if rootDir == "" {
		u, err := user.Lookup(userName)
		if err != nil {
			return nil, fmt.Errorf("user %q: %w (create it first: adduser --disabled-password piku)", userName, err)
		}
		rootDir = filepath.Join(u.HomeDir, ".piku")
	}
	return service.New(service.Config{Executable: exe, User: userName, Root: rootDir}, nil)
}

// runAsService runs the daemon under the service manager when it started
// piku, and reports false when piku runs interactively.
func runAsService(run func(ctx context.Context) error) (bool, error) {
	if !service.Managed() {
		return false, nil
	}
	svc, err := service.New(service.Config{Root: os.Getenv("PIKU_ROOT"), User: currentUserName()}, run)
	if err != nil {
		return true, err
	}
	return true, svc.Run()
}

func currentUserName() string {
	if u, err := user.Current(); err == nil && u.Username != "root" {
		return u.Username
	}
	return "piku"
}
