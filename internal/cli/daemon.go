package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/piku/piku/internal/daemon"
	"github.com/piku/piku/proxy"
)

func (c *cli) daemonCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the piku daemon in the foreground (supervisor, proxy, cron, control API)",
		Long: `Run the piku daemon in the foreground. It starts every app that is not
stopped, serves them through the built-in proxy and answers the other
piku commands on PIKU_ROOT/run/piku.sock. SIGINT or SIGTERM stops every
app gracefully; a second signal exits at once. SIGHUP restarts the daemon
in place, with the binary now at its path and the settings as they are
now: it runs that binary with --check-settings first, and if that fails
it goes on serving and logs why. Otherwise it stops accepting (new
connections wait in the kernel's backlog), drains the requests in
flight and replaces itself (same pid), keeping its listening sockets and
every app running. If the daemon dies (a crash, SIGKILL), the apps keep
running, and the next daemon adopts them.

--check-settings reads and checks the settings, prints them and exits,
without starting anything.

Settings come from flags, then PIKU_* environment variables (PIKU_HTTP,
PIKU_HTTPS, ...), then PIKU_ROOT/piku.yaml (keys named like the flags).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := c.daemonSettings(cmd)
			if err != nil {
				return err
			}
			if check, _ := cmd.Flags().GetBool("check-settings"); check {
				return c.checkDaemonSettings(v)
			}
			cfg, closeLog, err := c.daemonConfig(v)
			if err != nil {
				return err
			}
			defer closeLog()
			// Started by systemd: kardianos/service runs the daemon and
			// stops it, within the unit's stop timeout, on SIGTERM.
			if managed, err := runAsService(func(ctx context.Context) error { return daemon.Run(ctx, cfg) }); managed {
				return err
			}
			ctx, cancel := twoSignalContext(cfg.Logger)
			defer cancel()
			return daemon.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.String("http", ":80", "address the proxy serves HTTP on; empty turns HTTP off [$PIKU_HTTP]")
	f.String("https", ":443", "address the proxy serves HTTPS on; empty turns HTTPS off [$PIKU_HTTPS]")
	f.String("bind", "127.0.0.1", "address app instances listen on (BIND_ADDRESS) [$PIKU_BIND]")
	f.String("ports", "20000-29999", "range of ports handed to web instances [$PIKU_PORTS]")
	f.Bool("acme", true, "get certificates for apps' NGINX_SERVER_NAME from an ACME CA [$PIKU_ACME]")
	f.String("acme-email", "", "contact address for the ACME account [$PIKU_ACME_EMAIL]")
	f.String("acme-ca", "", "ACME directory URL, default Let's Encrypt [$PIKU_ACME_CA or $ACME_ROOT_CA]")
	f.String("log-level", "info", "daemon log level: debug, info, warn, error [$PIKU_LOG_LEVEL]")
	f.String("metrics", "", "TCP address to serve GET /metrics on besides the control socket; a bare port listens on loopback [$PIKU_METRICS]")
	f.Duration("shutdown-timeout", 30*time.Second, "how long stopping everything may take [$PIKU_SHUTDOWN_TIMEOUT]")
	f.String("cgroups", "auto", "auto: apps' limits in cgroups where the daemon may write them; off: best effort (open files, and memory by a watchdog) [$PIKU_CGROUPS]")
	f.Duration("send-timeout", proxy.DefaultSendTimeout, "cut a client connection when a write to it made no progress for this long (nginx's send_timeout); 0 turns it off [$PIKU_SEND_TIMEOUT]")
	f.Int("max-connections", 0, "client connections the proxy holds open at most; 0 derives it from the open file limit and the memory; clients beyond wait in the backlog [$PIKU_MAX_CONNECTIONS]")
	f.Int("max-header-bytes", proxy.DefaultMaxHeaderBytes, "bytes a request's header section (request line and fields) may take; each line a quarter of it, at least 8 KiB [$PIKU_MAX_HEADER_BYTES]")
	f.Int("max-header-fields", proxy.DefaultMaxHeaderFields, "header fields a request may carry [$PIKU_MAX_HEADER_FIELDS]")
	f.Int("procs", 0, "threads that run the daemon's Go code at once (GOMAXPROCS); 0: $GOMAXPROCS if set, else one, and more, up to the CPUs, while the daemon is busy [$PIKU_PROCS]")
	f.Bool("check-settings", false, "check the settings and the binary, print them and exit (a restart in place runs the new binary so first)")
	f.String("http1-server", "piku", "what serves plain HTTP: piku's own HTTP/1.1 server, or net/http's as an escape hatch [$PIKU_HTTP1_SERVER]")
	return cmd
}

// checkDaemonSettings checks the daemon's settings as a restart in place
// would read them, and prints them.
func (c *cli) checkDaemonSettings(v *viper.Viper) error {
	cfg, closeLog, err := c.daemonConfig(v)
	if err != nil {
		return err
	}
	closeLog()
	fmt.Fprintf(c.stdout, "piku %s: settings OK: http=%q https=%q ports=%d-%d root=%s\n",
		Version, cfg.HTTPAddr, cfg.HTTPSAddr, cfg.PortMin, cfg.PortMax, cfg.Root.Dir())
	return nil
}

// daemonSettings layers flags over PIKU_* variables over the config file.
func (c *cli) daemonSettings(cmd *cobra.Command) (*viper.Viper, error) {
	root, err := c.root()
	if err != nil {
		return nil, err
	}
	v := viper.New()
	v.SetEnvPrefix("PIKU")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AllowEmptyEnv(true) // PIKU_HTTPS= turns HTTPS off
	v.AutomaticEnv()
	if err := v.BindPFlags(cmd.Flags()); err != nil {
		return nil, err
	}
	if err := v.BindEnv("acme-ca", "PIKU_ACME_CA", "ACME_ROOT_CA"); err != nil {
		return nil, err
	}
	v.SetConfigName("piku")
	v.AddConfigPath(root.Dir())
	if err := v.ReadInConfig(); err != nil {
		if _, missing := err.(viper.ConfigFileNotFoundError); !missing {
			return nil, fmt.Errorf("reading the daemon's config in %s: %w", root.Dir(), err)
		}
	} else if err := checkConfigKeys(v.ConfigFileUsed(), cmd.LocalNonPersistentFlags()); err != nil {
		return nil, err
	}
	return v, nil
}

func (c *cli) daemonConfig(v *viper.Viper) (daemon.Config, func(), error) {
	root, err := c.root()
	if err != nil {
		return daemon.Config{}, nil, err
	}
	lo, hi, err := parsePortRange(v.GetString("ports"))
	if err != nil {
		return daemon.Config{}, nil, err
	}
	var netHTTP1 bool
	switch s := v.GetString("http1-server"); s {
	case "piku", "":
	case "net/http":
		netHTTP1 = true
	default:
		return daemon.Config{}, nil, fmt.Errorf("http1-server: %q is neither \"piku\" nor \"net/http\"", s)
	}
	var noCgroups bool
	switch s := v.GetString("cgroups"); s {
	case "auto", "":
	case "off":
		noCgroups = true
	default:
		return daemon.Config{}, nil, fmt.Errorf("cgroups: %q is neither \"auto\" nor \"off\"", s)
	}
	maxHeaderBytes, maxHeaderFields := v.GetInt("max-header-bytes"), v.GetInt("max-header-fields")
	if maxHeaderBytes < 1024 || maxHeaderBytes > 1<<20 {
		return daemon.Config{}, nil, fmt.Errorf("max-header-bytes: %d: want 1024 to 1048576", maxHeaderBytes)
	}
	if maxHeaderFields < 1 || maxHeaderFields > 10000 {
		return daemon.Config{}, nil, fmt.Errorf("max-header-fields: %d: want 1 to 10000", maxHeaderFields)
	}
	maxConns := v.GetInt("max-connections")
	if maxConns < 0 {
		return daemon.Config{}, nil, fmt.Errorf("max-connections: %d: want a count, or 0 to derive it", maxConns)
	}
	procs := v.GetInt("procs")
	if procs < 0 || procs > 1024 {
		return daemon.Config{}, nil, fmt.Errorf("procs: %d: want 1 to 1024, or 0 for one and more while busy", procs)
	}
	sendTimeout := v.GetDuration("send-timeout")
	switch {
	case sendTimeout < 0:
		return daemon.Config{}, nil, fmt.Errorf("send-timeout: %s: want a duration such as 60s, or 0 for none", sendTimeout)
	case sendTimeout == 0:
		sendTimeout = -1 // none
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(v.GetString("log-level"))); err != nil {
		return daemon.Config{}, nil, fmt.Errorf("log-level: %w", err)
	}
	file := &lumberjack.Logger{Filename: root.DaemonLog(), MaxSize: 10, MaxBackups: 5}
	opts := &slog.HandlerOptions{Level: level}
	logger := slog.New(slog.NewMultiHandler(
		slog.NewTextHandler(file, opts),
		slog.NewTextHandler(c.stderr, opts),
	))
	cfg := daemon.Config{
		Root:            root,
		HTTPAddr:        v.GetString("http"),
		HTTPSAddr:       v.GetString("https"),
		Bind:            v.GetString("bind"),
		PortMin:         lo,
		PortMax:         hi,
		ACME:            v.GetBool("acme"),
		ACMEEmail:       v.GetString("acme-email"),
		ACMEDirectory:   v.GetString("acme-ca"),
		ShutdownTimeout: v.GetDuration("shutdown-timeout"),
		MetricsAddr:     v.GetString("metrics"),
		NetHTTP1:        netHTTP1,
		NoCgroups:       noCgroups,
		SendTimeout:     sendTimeout,
		MaxConns:        maxConns,
		Procs:           procs,
		MaxHeaderBytes:  maxHeaderBytes,
		MaxHeaderFields: maxHeaderFields,
		Version:         Version,
		Logger:          logger,
	}
	return cfg, func() { _ = file.Close() }, nil
}

// parsePortRange parses "LOW-HIGH".
func parsePortRange(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || lo < 1024 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("ports %q: want a range like 20000-29999 within 1024-65535", s)
	}
	return lo, hi, nil
}
