// Package h1 is piku's HTTP/1.1 wire code for the proxy: the server loop,
// its request parser and response writer, and the header-section reading
// and field parsing that the proxy's upstream client shares with them.
//
// It sits under proxy/internal so that only the proxy can import it: its
// API is shaped by the proxy's needs (a handler, limits, a context), not
// kept for other callers.
package h1
