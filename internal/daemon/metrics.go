package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/piku/piku/internal/isolation"
	"github.com/piku/piku/internal/metrics"
	"github.com/piku/piku/internal/procgroup"
	"github.com/piku/piku/internal/supervisor"
)

// newMetrics creates the daemon's metrics over its parts.
func (d *Daemon) newMetrics() *metrics.Registry {
	return metrics.New(metrics.Sources{
		Instances:    d.metricInstances,
		Cron:         d.metricCron,
		Certificates: d.certExpiries,
		Limits:       d.metricLimits,
		Isolation:    func() string { return string(d.cgroups.Mode()) },
	})
}

// metricInstances lists every instance of every deployed app.
func (d *Daemon) metricInstances() []metrics.Instance {
	apps, err := d.root.Apps()
	if err != nil {
		d.log.Warn("metrics: listing apps", "err", err)
		return nil
	}
	var out []metrics.Instance
	for _, app := range apps {
		for _, in := range d.sup.Status(app) {
			nice, hasNice := 0, false
			if in.PID != 0 {
				nice, hasNice = procgroup.Nice(in.PID)
			}
			out = append(out, metrics.Instance{
				App: app, Kind: in.Kind, N: in.N, State: string(in.State), Running: in.PID != 0,
				Restarts: in.Restarts, RecentRestarts: in.RecentRestarts,
				Exited: in.LastExit != "", ExitCode: in.ExitCode,
				StartedAt: in.StartedAt, RSS: in.RSS, CPU: in.CPU, HealthFailures: in.HealthFailures,
				Nice: nice, HasNice: hasNice,
			})
		}
	}
	return out
}

// outcomeLabel is the metrics' short name of a kind's rollout outcome.
func outcomeLabel(r supervisor.Result) string {
	switch r {
	case supervisor.ResultReady:
		return "ready"
	case supervisor.ResultKept:
		return "kept"
	case supervisor.ResultReplacedFailing:
		return "replaced_failing"
	case supervisor.ResultFirstFailing:
		return "first_failing"
	}
	return "other"
}

// metricCron lists the last run of every cron entry.
func (d *Daemon) metricCron() []metrics.CronRun {
	apps, err := d.root.Apps()
	if err != nil {
		return nil
	}
	var out []metrics.CronRun
	for _, app := range apps {
		jobs, _ := d.cron.Status(app)
		for _, j := range jobs {
			out = append(out, metrics.CronRun{App: app, Entry: j.Name, Started: j.LastRun,
				Ended: j.LastExit != "", Duration: j.LastDuration, ExitCode: j.LastExitCode})
		}
	}
	return out
}

// certExpiries is when the certificate last served for each app host
// expires. Only names of apps' hosts are kept, so a client sending made-up
// server names cannot grow it.
func (d *Daemon) certExpiries() map[string]time.Time {
	d.certMu.Lock()
	defer d.certMu.Unlock()
	out := make(map[string]time.Time, len(d.certExpiry))
	for host, exp := range d.certExpiry {
		if d.isAppHost(host) {
			out[host] = exp
		}
	}
	return out
}

// isAppHost reports whether host is a host name of an app's route.
func (d *Daemon) isAppHost(host string) bool {
	owner, _ := d.table.HostOwner("", []string{host})
	return owner != ""
}

// observeTLS wraps the proxy's TLS configuration to count handshakes and
// note the expiry of the certificate served for each app host.
func (d *Daemon) observeTLS(cfg *tls.Config) *tls.Config {
	get := cfg.GetCertificate
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		d.metrics.TLSHandshake()
		return nil, nil
	}
	if get == nil {
		return cfg
	}
	cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		c, err := get(hello)
		if err != nil || c == nil || hello.ServerName == "" {
			return c, err
		}
		leaf := c.Leaf
		if leaf == nil && len(c.Certificate) > 0 {
			leaf, _ = x509.ParseCertificate(c.Certificate[0])
		}
		if leaf != nil {
			if d.isAppHost(hello.ServerName) {
				d.certMu.Lock()
				d.certExpiry[hello.ServerName] = leaf.NotAfter
				d.certMu.Unlock()
			}
		}
		return c, err
	}
	return cfg
}

// serveMetrics serves /metrics on addr until ctx ends. A bare port
// ("9180" or ":9180") listens on loopback only.
func (d *Daemon) serveMetrics(ctx context.Context, addr string) error {
	addr = metricsAddr(addr)
	ln, err := d.lis.listen("tcp:"+addr, func() (net.Listener, error) { return net.Listen("tcp", addr) })
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", refuseAppPeers(d.metrics.Handler()))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	d.log.Info("serving metrics", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics listener: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics listener: %w", err)
	}
	return nil
}

// refuseAppPeers answers 403 to a client that is one of the apps'
// processes, as the control socket refuses them: every app's metrics
// are there. The peer is found from its TCP port (procgroup.TCPPeer);
// a client on another machine (Prometheus), which no process here
// holds, is served.
func refuseAppPeers(h http.Handler) http.Handler {
	daemon := os.Getpid()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		peer, err := net.ResolveTCPAddr("tcp", r.RemoteAddr)
		if la, ok := local.(*net.TCPAddr); ok && err == nil {
			if pid := procgroup.TCPPeer(peer.Port, la.Port); pid > 0 {
				if a, ok := isolation.Owner(pid, daemon); ok {
					msg := fmt.Sprintf("refused: process %d belongs to app %q (%s); apps may not read the metrics, which show every app's", a.PID, a.App, a.Reason)
					http.Error(w, msg, http.StatusForbidden)
					return
				}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// metricsAddr puts a bare port on loopback.
func metricsAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return net.JoinHostPort("127.0.0.1", addr)
	}
	if host == "" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}
