package daemon

import (
	"fmt"
	"net"

	"github.com/piku/piku/internal/certs"
	"github.com/piku/piku/internal/cron"
	"github.com/piku/piku/internal/isolation"
	"github.com/piku/piku/internal/supervisor"
	"github.com/piku/piku/proxy"
)

// build creates the daemon's parts. The proxy comes first: it owns the
// route table the supervisor's instance events write to.
func (d *Daemon) build() error {
	var err error
	d.certs, err = certs.New(certs.Options{
		Dir:          d.root.CertsDir(),
		Email:        d.cfg.ACMEEmail,
		DirectoryURL: d.cfg.ACMEDirectory,
		ACME:         d.cfg.ACME,
		Logger:       d.log.With("part", "certs"),
	})
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	d.metrics = d.newMetrics()
	if d.cfg.NoCgroups {
		d.cgroups = &isolation.Cgroups{Why: "cgroups turned off (--cgroups=off, PIKU_CGROUPS=off)"}
	} else {
		d.cgroups = isolation.DetectCgroups("/sys/fs/cgroup", d.root.Dir())
	}
	d.watchdog = &isolation.MemoryWatchdog{Procs: isolation.SystemProcs{}}
	if d.cgroups.Mode() == isolation.ModeBestEffort {
		d.log.Warn("app limits: best effort: no cgroup this daemon may write, so CPU and process limits are NOT enforced; only the limits per process are (PIKU_NOFILE, PIKU_CORE_MAX, PIKU_NICE), and PIKU_MEMORY_MAX by a watchdog every "+memoryCheckEvery.String(), "why", d.cgroups.Why)
	} else {
		d.log.Info("app limits: "+string(d.cgroups.Mode()), "controllers", d.cgroups.Controllers(), "default_pids_max", isolation.DefaultPidsMax)
	}
	maxConns := d.connLimit()
	if d.metrics != nil {
		d.metrics.SetConnLimit(maxConns)
	}
	d.sleeper = newSleeper(d)
	d.proxy = proxy.New(proxy.Options{
		Wake:      d.sleeper.wake,
		MaxConns:  maxConns,
		Logger:    d.log.With("part", "proxy"),
		HTTPAddr:  d.cfg.HTTPAddr,
		HTTPSAddr: d.cfg.HTTPSAddr,
		Listen: func(addr string) (net.Listener, error) {
			return d.lis.listen("tcp:"+addr, func() (net.Listener, error) { return net.Listen("tcp", addr) })
		},
		TLSConfig:   d.observeTLS(d.certs.TLSConfig()),
		HTTPWrap:    d.certs.HTTPHandler,
		Observer:    d.metrics,
		NetHTTP1:    d.cfg.NetHTTP1,
		SendTimeout: d.cfg.SendTimeout,
		TempDir:     d.root.ProxyTemp(),
		// Header limits, as nginx's large_client_header_buffers.
		MaxHeaderBytes:  d.cfg.MaxHeaderBytes,
		MaxHeaderFields: d.cfg.MaxHeaderFields,
		// Requests in flight when the daemon stops may take as long as
		// the whole stop.
		ShutdownTimeout: d.cfg.ShutdownTimeout,
	})
	d.table, d.activity = d.proxy, d.proxy
	d.sup, err = supervisor.New(supervisor.Options{
		Logger:    d.log.With("part", "supervisor"),
		Router:    router{table: d.table},
		Ports:     supervisor.PortRange{Bind: d.cfg.Bind, Min: d.cfg.PortMin, Max: d.cfg.PortMax},
		StateFile: d.root.ProcessStateFile(),
		OutputDir: d.root.OutputDir(),
		OOM:       oomCounter{d},
	})
	if err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
	// Cron runs outlive the daemon as the apps do: their output goes
	// through a FIFO, and the runs an earlier daemon left are followed.
	var left []cron.Adopted
	for _, lr := range d.sup.LeftRuns() {
		left = append(left, cron.Adopted{Tracked: cron.Tracked{App: lr.App, Name: lr.Name, Log: lr.Log, Output: lr.Output,
			Process: lr.Process}, Done: lr.Done})
	}
	d.cron = cron.New(cron.Options{
		Track: func(t cron.Tracked) func() {
			return d.sup.Track(supervisor.CronRun{App: t.App, Name: t.Name, Log: t.Log, Output: t.Output, Process: t.Process})
		},
		OutputDir: d.root.OutputDir(),
		StateFile: d.root.CronStateFile(),
		Adopted:   left,
		Logger:    d.log.With("part", "cron"),
	})
	d.procs, d.certHosts, d.jobs = d.sup, d.certs, d.cron
	return nil
}

// connLimit returns the bound on the proxy's client connections: the
// daemon's max-connections if set, else the fewer of what its file
// descriptors (fdlimit_linux.go) and its memory (memlimit_linux.go)
// allow; 0 for none.
func (d *Daemon) connLimit() int {
	fdConns := 0
	if limit := raiseFDLimit(d.log); limit > 0 {
		fdConns = proxyConnLimit(limit)
		d.log.Info("file descriptors", "limit", limit, "proxy_connections", fdConns, "reserved", fdReserve(limit))
	}
	headerBytes := d.cfg.MaxHeaderBytes
	if headerBytes <= 0 {
		headerBytes = proxy.DefaultMaxHeaderBytes
	}
	mem := memoryLimit()
	memConns := memoryConnLimit(mem, headerBytes)
	n, from := fdConns, "file descriptors"
	if memConns > 0 && (n == 0 || memConns < n) {
		n, from = memConns, "memory"
	}
	if d.cfg.MaxConns > 0 {
		n, from = d.cfg.MaxConns, "max-connections"
		if fdConns > 0 && n > fdConns {
			d.log.Warn("max-connections is above what the file descriptors allow the proxy", "max_connections", n, "fd_connections", fdConns)
		}
	}
	d.log.Info("client connections", "limit", n, "from", from, "memory", mem, "memory_connections", memConns, "fd_connections", fdConns)
	return n
}
