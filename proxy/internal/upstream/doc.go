// Package upstream is the proxy's HTTP/1.1 client to its backends: pooled
// keep-alive connections checked before reuse, a request written straight
// from the client's (its head flushed before a body that streams), and a
// response read with the same framing decision, header-section reader and
// trailer reader as the proxy's server side (package h1).
//
// The proxy keeps what is policy: which backend, which of the client's
// fields may go (Request.Fields), what to do with the answer. This package
// keeps what is wire protocol and what http.Transport exists for: the
// response header timeout, 1xx answers, protocol switches, trailers, when
// a connection may be reused and when a request may be sent again.
package upstream
