// Package procfile parses and writes the small text files that describe a
// piku app: the Procfile (which processes to run), ENV files (KEY=VALUE
// settings) and SCALING files (how many instances of each process kind).
//
// The package is pure: it reads from io.Reader and writes to io.Writer, runs
// no processes and keeps no global state. Every parse error is an *Error that
// names the file and the line, so callers can print it as is:
//
//	Procfile line 3: missing ':'
//
// The formats are the ones Python piku reads, so existing apps keep working;
// the few places where this package is stricter or richer are documented on
// Parse, ParseEnv and ParseScaling.
package procfile
