package service

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestUnit(t *testing.T) {
	unit, err := Unit(Config{Executable: "/usr/local/bin/piku", Root: "/home/piku/.piku"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"[Unit]\nDescription=piku: git push deployments (daemon)\n",
		"\nUser=piku\n",
		"\nExecStart=/usr/local/bin/piku daemon\n",
		"\nWorkingDirectory=/home/piku/.piku\n",
		"\nEnvironment=PIKU_ROOT=/home/piku/.piku\n",
		"\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n",
		"\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
		"\nRestart=always\nRestartSec=5\n",
		"\nKillMode=process\nNotifyAccess=main\nFileDescriptorStoreMax=16\n",
		"\nOOMScoreAdjust=-900\nDelegate=yes\n",
		"\nTimeoutStopSec=60\n",
		"[Install]\nWantedBy=multi-user.target\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	if strings.Contains(unit, "{{") || strings.Contains(unit, "User=root") {
		t.Errorf("unit:\n%s", unit)
	}
}

func TestUnitCustom(t *testing.T) {
	unit, err := Unit(Config{Name: "paas", User: "deploy", Executable: "/opt/my piku/piku", Root: "/srv/p%ku$x",
		Args: []string{"daemon", "--listen", ":8080"}, StopTimeout: 2 * time.Minute, RestartDelay: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nUser=deploy\n",
		`ExecStart="/opt/my piku/piku" daemon --listen :8080` + "\n",
		"\nEnvironment=PIKU_ROOT=/srv/p%%ku$$x\n",
		"\nTimeoutStopSec=120\n",
		"\nRestartSec=10\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
}

func TestUnitRejects(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Executable: "/bin/piku"}, "PIKU_ROOT"},
		{Config{Executable: "/bin/piku", Root: "relative"}, "PIKU_ROOT"},
		{Config{Executable: "piku", Root: "/r"}, "absolute"},
		{Config{Executable: "/bin/piku", Root: "/r", User: "root"}, "must not run as root"},
		{Config{Executable: "/bin/piku", Root: "/r\nExecStartPre=/bin/evil"}, "newlines"},
		{Config{Executable: "/bin/piku", Root: "/r", Description: "{{Path}}"}, "newlines"},
	}
	for _, tt := range tests {
		if _, err := Unit(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Unit(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

// TestNoSystemd checks that without systemd every command fails plainly
// before touching anything.
func TestNoSystemd(t *testing.T) {
	s, err := newService(Config{Executable: "/usr/local/bin/piku", Root: "/tmp/piku-root"}, nil, "unix-systemv")
	if err != nil {
		t.Fatal(err)
	}
	for name, fn := range map[string]func() error{
		"install": s.Install, "uninstall": s.Uninstall, "start": s.Start, "stop": s.Stop, "restart": s.Restart,
		"status": func() error { _, err := s.Status(); return err },
	} {
		err := fn()
		if !errors.Is(err, ErrNoSystemd) || !strings.Contains(err.Error(), "piku service "+name) {
			t.Errorf("%s = %v, want ErrNoSystemd naming the action", name, err)
		}
	}
	if err := s.Run(); err == nil {
		t.Error("Run without a daemon or systemd succeeded")
	}
}

// TestNewOnThisMachine uses the real detection: here (a container without
// systemd) it must refuse install; under systemd, New must succeed.
func TestNewOnThisMachine(t *testing.T) {
	s, err := New(Config{Executable: "/usr/local/bin/piku", Root: "/tmp/piku-root"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.svc == nil {
		if err := s.Install(); !errors.Is(err, ErrNoSystemd) {
			t.Errorf("Install without systemd = %v", err)
		}
	}
}

func TestProgramStartStop(t *testing.T) {
	// Start returns while the daemon runs: run is held until Start has
	// returned, so a Start that waited for it would never return (and the
	// test would end at its timeout). The stop timeouts that must not pass
	// are an hour.
	stopped, release := make(chan struct{}), make(chan struct{})
	p := &program{stopTimeout: time.Hour, run: func(ctx context.Context) error {
		<-release
		<-ctx.Done()
		close(stopped)
		return nil
	}}
	if err := p.Start(nil); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := p.Start(nil); err == nil {
		t.Error("second Start accepted")
	}
	if err := p.Stop(nil); err != nil {
		t.Fatal(err)
	}
	<-stopped

	stuck := make(chan struct{})
	defer close(stuck)
	slow := &program{stopTimeout: 100 * time.Millisecond, run: func(ctx context.Context) error { <-stuck; return nil }}
	_ = slow.Start(nil)
	if err := slow.Stop(nil); err == nil || err.Error() != "the piku daemon did not stop within 100ms" {
		t.Errorf("Stop of a stuck daemon = %v", err)
	}
	failing := &program{stopTimeout: time.Hour, run: func(ctx context.Context) error { <-ctx.Done(); return errors.New("boom") }}
	_ = failing.Start(nil)
	if err := failing.Stop(nil); err == nil || err.Error() != "boom" {
		t.Errorf("Stop = %v, want the daemon's error", err)
	}
	if err := (&program{}).Stop(nil); err != nil {
		t.Errorf("Stop before Start = %v", err)
	}
}

// TestRunEndsWhenTheDaemonFails: a daemon that stops by itself (its port
// taken) must end Run with its error, so the process exits non-zero and
// systemd restarts it, rather than idling "active" until a signal.
func TestRunEndsWhenTheDaemonFails(t *testing.T) {
	tests := []struct {
		name string
		run  Runner
		want string
	}{
		{"with an error", func(ctx context.Context) error { return errors.New("proxy: listen tcp :80: address already in use") }, "address already in use"},
		{"without one", func(ctx context.Context) error { return nil }, "stopped by itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := newService(Config{Executable: "/usr/local/bin/piku", Root: t.TempDir()}, tt.run, "linux-systemd")
			if err != nil {
				t.Fatal(err)
			}
			if s.svc == nil {
				t.Skip("kardianos/service finds no service system on this machine, so there is no service to run")
			}
			if err := s.Run(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v, want an error with %q", err, tt.want)
			}
		})
	}
}
