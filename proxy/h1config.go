package proxy

import "github.com/piku/piku/proxy/internal/h1"

// h1Config is the part of o that piku's HTTP/1.1 server takes.
func h1Config(o Options) h1.Config {
	return h1.Config{
		ReadHeaderTimeout:  o.ReadHeaderTimeout,
		IdleTimeout:        o.IdleTimeout,
		MaxHeaderBytes:     o.MaxHeaderBytes,
		MaxHeaderFields:    o.MaxHeaderFields,
		MaxHeaderLineBytes: headerLineLimit(o.MaxHeaderBytes),
	}
}
