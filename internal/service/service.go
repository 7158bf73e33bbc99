// Package service installs and controls piku as a system service with
// kardianos/service, and runs the daemon when the service manager starts it.
//
// Only systemd is supported for install, uninstall, start, stop, restart and
// status: piku's unit needs systemd features (running as the piku user with
// only the capability to bind ports 80 and 443). On a machine without
// systemd these fail with ErrNoSystemd and change nothing; run `piku
// daemon` under another supervisor there.
package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	kservice "github.com/kardianos/service"
)

// Config describes the service.
type Config struct {
	// Name is the unit name; default "piku".
	Name string
	// DisplayName is a short human name; default "piku".
	DisplayName string
	// Description is the unit's description; default "piku: git push
	// deployments (daemon)".
	Description string
	// Executable is the absolute path of the piku binary; default the
	// running executable.
	Executable string
	// User runs the daemon; default "piku". Never root.
	User string
	// Root is PIKU_ROOT, passed in the environment and used as working
	// directory. Required.
	Root string
	// Args are the arguments of ExecStart; default ["daemon"].
	Args []string
	// StopTimeout is how long the daemon has to stop its apps before the
	// service manager kills what is left (TimeoutStopSec), and how long Run
	// waits for the daemon to return after a stop; default 60s.
	StopTimeout time.Duration
	// RestartDelay is the pause before the service manager restarts a daemon
	// that died; default 5s.
	RestartDelay time.Duration
}

// ErrNoSystemd is returned by the control methods when systemd is not the
// service manager here.
var ErrNoSystemd = errors.New("systemd is not running on this machine (piku service needs it); nothing was changed: run `piku daemon` under your own process supervisor instead")

func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		c.Name = "piku"
	}
	if c.DisplayName == "" {
		c.DisplayName = "piku"
	}
	if c.Description == "" {
		c.Description = "piku: git push deployments (daemon)"
	}
	if c.User == "" {
		c.User = "piku"
	}
	if len(c.Args) == 0 {
		c.Args = []string{"daemon"}
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 60 * time.Second
	}
	if c.RestartDelay <= 0 {
		c.RestartDelay = 5 * time.Second
	}
	if c.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("finding the piku executable: %w", err)
		}
		c.Executable = exe
	}
	if c.User == "root" {
		return c, errors.New("the piku service must not run as root: create a piku user")
	}
	if !strings.HasPrefix(c.Executable, "/") {
		return c, fmt.Errorf("service executable %q must be an absolute path", c.Executable)
	}
	if c.Root == "" || !strings.HasPrefix(c.Root, "/") {
		return c, fmt.Errorf("service PIKU_ROOT %q must be an absolute path", c.Root)
	}
	for _, v := range append([]string{c.Name, c.DisplayName, c.Description, c.Executable, c.User, c.Root}, c.Args...) {
		if strings.ContainsAny(v, "\n\r\x00") || strings.Contains(v, "{{") {
			return c, fmt.Errorf("service setting %q: newlines and \"{{\" are not allowed", v)
		}
	}
	return c, nil
}

// Unit renders the systemd unit piku installs for cfg.
func Unit(cfg Config) (string, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return "", err
	}
	exec := []string{systemdQuote(c.Executable)}
	for _, a := range c.Args {
		exec = append(exec, systemdQuote(a))
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("[Unit]")
	w("Description=%s", c.Description)
	w("After=network-online.target")
	w("Wants=network-online.target")
	w("")
	w("[Service]")
	w("Type=simple")
	w("User=%s", c.User)
	w("ExecStart=%s", strings.Join(exec, " "))
	w("WorkingDirectory=%s", systemdQuote(c.Root))
	w("Environment=%s", systemdQuote("PIKU_ROOT="+c.Root))
	// Bind ports 80 and 443 without root, and nothing more, for the daemon
	// and every app it starts.
	w("AmbientCapabilities=CAP_NET_BIND_SERVICE")
	w("CapabilityBoundingSet=CAP_NET_BIND_SERVICE")
	w("NoNewPrivileges=true")
	w("Restart=always")
	w("RestartSec=%d", int(c.RestartDelay.Seconds()))
	// SIGTERM (and SIGKILL after TimeoutStopSec) goes to the daemon
	// alone: a stop makes it drain and stop its apps itself, while a
	// daemon that crashes, and is restarted by Restart=always, leaves its
	// apps running for the next one to adopt. (mixed or control-group
	// would kill every app whenever the daemon exits.)
	w("KillMode=process")
	// The daemon keeps its listening sockets in systemd's file descriptor
	// store (FDSTORE=1 on the notification socket), so that the daemon
	// systemd restarts after a crash gets them back: connections wait in
	// their backlog meanwhile instead of being refused.
	w("NotifyAccess=main")
	w("FileDescriptorStoreMax=16")
	w("KillSignal=SIGTERM")
	w("TimeoutStopSec=%d", int(c.StopTimeout.Seconds()))
	w("LimitNOFILE=65536")
	// The OOM killer takes an app (whose processes raise theirs to +500)
	// before the daemon that proxies every app.
	w("OOMScoreAdjust=-900")
	// The daemon's cgroup v2 subtree is its own: it makes a cgroup per
	// app in it and sets the apps' limits there.
	w("Delegate=yes")
	w("")
	w("[Install]")
	w("WantedBy=multi-user.target")
	return b.String(), nil
}

// systemdQuote quotes one word of a unit file value: '%' and '$' are
// doubled (systemd expands them) and words with spaces, quotes or
// backslashes are double-quoted with \" and \\ escapes.
func systemdQuote(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	s = strings.ReplaceAll(s, "$", "$$")
	if s != "" && !strings.ContainsAny(s, " \t\"'\\;") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// Runner is what the service runs: the daemon. Run returns when ctx ends
// (after a graceful stop) or on a fatal error.
type Runner func(ctx context.Context) error

// Service controls the piku system service.
type Service struct {
	cfg      Config
	platform string
	svc      kservice.Service
	prog     *program
}

// New returns the service for cfg. run is the daemon, used by Run; it may be
// nil for a Service that only controls the installed one.
func New(cfg Config, run Runner) (*Service, error) {
	return newService(cfg, run, kservice.Platform())
}

func newService(cfg Config, run Runner, platform string) (*Service, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	unit, err := Unit(c)
	if err != nil {
		return nil, err
	}
	p := &program{run: run, stopTimeout: c.StopTimeout}
	kc := &kservice.Config{
		Name:             c.Name,
		DisplayName:      c.DisplayName,
		Description:      c.Description,
		UserName:         c.User,
		Executable:       c.Executable,
		Arguments:        c.Args,
		WorkingDirectory: c.Root,
		EnvVars:          map[string]string{"PIKU_ROOT": c.Root},
		// The unit is rendered whole by Unit; it has no template actions
		// left for kardianos to fill in.
		// RunWait: Run returns on SIGTERM or SIGINT as usual, and also when
		// the daemon stops by itself (a port taken, a socket in use), so
		// the process exits non-zero and systemd's Restart= can act.
		Option: kservice.KeyValue{"SystemdScript": unit, "RunWait": p.wait},
	}
	s := &Service{cfg: c, platform: platform, prog: p}
	if platform == "linux-systemd" {
		svc, err := kservice.New(p, kc)
		if err != nil {
			return nil, fmt.Errorf("setting up the %s service: %w", c.Name, err)
		}
		s.svc = svc
	}
	return s, nil
}

func (s *Service) control(action string) error {
	if s.svc == nil {
		return fmt.Errorf("%s service %s: %w", s.cfg.Name, action, ErrNoSystemd)
	}
	if err := kservice.Control(s.svc, action); err != nil {
		return fmt.Errorf("%s service %s: %w", s.cfg.Name, action, err)
	}
	return nil
}

// Install writes and enables the systemd unit (it needs root).
func (s *Service) Install() error { return s.control("install") }

// Uninstall disables and removes the unit.
func (s *Service) Uninstall() error { return s.control("uninstall") }

// Start starts the installed service.
func (s *Service) Start() error { return s.control("start") }

// Stop stops the service.
func (s *Service) Stop() error { return s.control("stop") }

// Restart restarts the service.
func (s *Service) Restart() error { return s.control("restart") }

// Status reports "running", "stopped" or "not installed".
func (s *Service) Status() (string, error) {
	if s.svc == nil {
		return "", fmt.Errorf("%s service status: %w", s.cfg.Name, ErrNoSystemd)
	}
	st, err := s.svc.Status()
	switch {
	case errors.Is(err, kservice.ErrNotInstalled):
		return "not installed", nil
	case err != nil:
		return "", fmt.Errorf("%s service status: %w", s.cfg.Name, err)
	case st == kservice.StatusRunning:
		return "running", nil
	case st == kservice.StatusStopped:
		return "stopped", nil
	}
	return "unknown", nil
}

// Run runs the daemon the way the service manager expects: it returns after
// SIGTERM (or SIGINT) once the daemon has stopped, at most StopTimeout
// later. Without systemd it runs the daemon until such a signal all the
// same, so `piku daemon` behaves alike everywhere.
func (s *Service) Run() error {
	if s.prog.run == nil {
		return errors.New("service run: no daemon to run")
	}
	if s.svc == nil {
		return errors.New("service run: systemd is not running here; start `piku daemon` directly")
	}
	if err := s.svc.Run(); err != nil {
		return fmt.Errorf("%s service: %w", s.cfg.Name, err)
	}
	return s.prog.result()
}

// program adapts a Runner to kardianos's Start/Stop.
type program struct {
	run         Runner
	stopTimeout time.Duration

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Start starts the daemon in its own goroutine and returns at once.
func (p *program) Start(kservice.Service) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		return errors.New("the piku daemon is already started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		err := p.run(ctx)
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return nil
}

// wait returns on SIGTERM or SIGINT, or when the daemon has returned by
// itself.
func (p *program) wait() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sig)
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-sig:
	case <-done:
	}
}

// Stop asks the daemon to stop and waits at most stopTimeout for it. A
// daemon that had already returned by itself is a failure, even without
// an error of its own.
func (p *program) Stop(kservice.Service) error {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		if err := p.result(); err != nil {
			return err
		}
		return errors.New("the piku daemon stopped by itself")
	default:
	}
	cancel()
	t := time.NewTimer(p.stopTimeout)
	defer t.Stop()
	select {
	case <-done:
		return p.result()
	case <-t.C:
		return fmt.Errorf("the piku daemon did not stop within %s", p.stopTimeout)
	}
}

func (p *program) result() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

var _ kservice.Interface = (*program)(nil)

// Managed reports whether systemd started this process as a service (and
// not a terminal, a script or another supervisor).
func Managed() bool {
	return kservice.Platform() == "linux-systemd" && !kservice.Interactive()
}
