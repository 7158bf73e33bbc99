package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
)

// accessLog writes one line per request in the combined log format
// followed by the request's duration in seconds, like nginx's
// `$request_time`, to a file rotated at 50 MB with 5 old files kept.
type accessLog struct {
	lj *lumberjack.Logger
}

func newAccessLog(path string) *accessLog {
	return &accessLog{lj: &lumberjack.Logger{Filename: path, MaxSize: 50, MaxBackups: 5}}
}

// Close closes the file; a later write opens it again.
func (l *accessLog) Close() error { return l.lj.Close() }

func (l *accessLog) write(r *http.Request, lw *logWriter, info *reqInfo, d time.Duration) {
	status := responseStatus(r, lw)
	user := "-"
	if u, _, ok := r.BasicAuth(); ok && u != "" {
		user = quoteLog(u)
	}
	line := fmt.Sprintf("%s - %s [%s] \"%s %s %s\" %d %d \"%s\" \"%s\" %.3f\n",
		info.client, user, info.start.Format("02/Jan/2006:15:04:05 -0700"),
		quoteLog(r.Method), quoteLog(r.RequestURI), quoteLog(r.Proto), status, lw.bytes,
		orDash(quoteLog(r.Referer())), orDash(quoteLog(r.UserAgent())), d.Seconds())
	l.lj.Write([]byte(line))
}

// responseStatus is the status lw saw go out: 101 for an upgraded
// connection (whose 101 the logWriter does not see), 200 when the handler
// wrote nothing.
func responseStatus(r *http.Request, lw *logWriter) int {
	if lw.status != 0 {
		return lw.status
	}
	if r.Header.Get("Upgrade") != "" {
		return http.StatusSwitchingProtocols
	}
	return http.StatusOK
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// quoteLog escapes quotes, backslashes and control bytes, as nginx does.
func quoteLog(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == '"' || r == '\\' || r == 0x7f }) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c == 0x7f {
			fmt.Fprintf(&b, "\\x%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// logWriter records the status and body bytes of a response.
type logWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *logWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *logWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
