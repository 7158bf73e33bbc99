package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/layout"
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
brings back every app that was not stopped. restart, while the daemon
runs (PIKU_ROOT/run/piku.pid), restarts it in place with the binary now at
its path, as SIGHUP does: no app restarts and no connection is refused;
if the new binary or the settings fail their check, the daemon goes on
serving and restart says why. To upgrade piku, install the new binary
over the old one, then run ` + "`piku service restart`" + `.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"install", "uninstall", "start", "stop", "restart", "status"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] == "restart" {
				// A daemon that runs restarts in place: no app restarts.
				if running, err := c.restartInPlace(userName); running {
					return err
				}
			}
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

// restartInPlace asks the daemon that runs for the service's PIKU_ROOT
// (--root, $PIKU_ROOT, or userName's ~/.piku) to restart in place, and
// waits until the new image answers. running is false when no daemon
// runs or answers there: the service manager restarts it then.
func (c *cli) restartInPlace(userName string) (running bool, err error) {
	rootDir := c.rootDir
	if rootDir == "" {
		rootDir = os.Getenv("PIKU_ROOT")
	}
	if rootDir == "" {
		u, err := user.Lookup(userName)
		if err != nil {
			return false, nil
		}
		rootDir = filepath.Join(u.HomeDir, ".piku")
	}
	root, err := layout.New(rootDir)
	if err != nil {
		return false, nil
	}
	b, err := os.ReadFile(root.PidFile())
	if err != nil {
		return false, nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 || syscall.Kill(pid, 0) == syscall.ESRCH {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), restartWait)
	defer cancel()
	cl := c.client(root)
	before, err := cl.Ping(ctx)
	if err != nil || before.PID != pid {
		return false, nil
	}
	if err := cl.Restart(ctx); errors.Is(err, control.ErrRestartUnsupported) {
		// An older daemon: the service manager restarts it, and every
		// app with it, this once.
		fmt.Fprintf(c.stdout, "-----> %v: restarting the service, and every app with it, this once\n", err)
		return false, nil
	} else if err != nil {
		return true, fmt.Errorf("the piku daemon (pid %d) did not restart: %w", pid, err)
	}
	fmt.Fprintf(c.stdout, "-----> piku daemon (pid %d) restarting in place: draining, then handing over\n", pid)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, fmt.Errorf("the piku daemon (pid %d) did not answer again within %s: see its log, %s", pid, restartWait, root.DaemonLog())
		case <-tick.C:
		}
		if info, err := cl.Ping(ctx); err == nil && info.Started.After(before.Started) {
			fmt.Fprintf(c.stdout, "-----> piku daemon restarted in place (pid %d, version %s)\n", info.PID, info.Version)
			return true, nil
		}
	}
}

// restartWait bounds how long `piku service restart` waits for a daemon
// restarting in place: its drain and the new image's start.
const restartWait = 2 * time.Minute

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
