package supervisor

import (
	"fmt"
	"io"
	"time"

	"github.com/piku/piku/internal/isolation"
)

// copyOutput copies the output of an instance's process from r to its log
// w until r ends.
//
// Output beyond the app's rate (LogPolicy.Rate, shared by its instances)
// is dropped and counted, and the copier pauses after each dropped chunk
// (dropPause), so that one app writing as fast as it can costs the daemon
// no more than its rate in log writes and a bounded number of reads; a
// line in the log says
// how much was dropped, at most every noticeEvery and when the output
// ends. A chunk that cannot be written (a full disk, a log folder gone)
// is dropped and counted too instead of ending the copy: closing the
// pipe would kill the process with SIGPIPE, or block it once the pipe is
// full. The next chunk is tried again, so logging resumes by itself when
// the disk has room. The daemon log says when dropping starts and when it
// ends; `piku ps` shows the counts.
func (in *instance) copyOutput(w io.Writer, r io.Reader) {
	buf := make([]byte, 32<<10)
	failing := false
	var dropped int64 // in the current failing spell
	var over int64    // over the rate since the last notice
	lim := in.output
	lastNotice := time.Now()
	if lim != nil {
		lastNotice = lim.now()
	}
	notice := func() {
		if over > 0 {
			_, _ = fmt.Fprintf(w, "piku: dropped %d bytes of output (rate limit %s)\n", over, lim.limitText())
			over = 0
		}
	}
	for {
		n, err := r.Read(buf)
		if n > 0 && lim != nil && !lim.take(n) {
			if over == 0 {
				in.log.Warn("output over the app's rate: dropping what is beyond it", "rate", lim.limitText())
			}
			over += int64(n)
			in.update(func(st *InstanceStatus) { st.LogRateDropped += int64(n) })
			if now := lim.now(); now.Sub(lastNotice) >= noticeEvery {
				notice()
				lastNotice = now
			}
			n = 0
			time.Sleep(dropPause)
		}
		if n > 0 {
			notice()
			written, werr := w.Write(buf[:n])
			switch {
			case werr != nil:
				lost := int64(n - max(written, 0))
				dropped += lost
				in.update(func(st *InstanceStatus) { st.LogDropped += lost; st.LogError = werr.Error() })
				if !failing {
					failing = true
					in.log.Warn("cannot write the log: dropping output until it can", "log", in.logPath, "err", werr)
				}
			case failing:
				failing = false
				in.update(func(st *InstanceStatus) { st.LogError = "" })
				in.log.Info("the log is writable again", "log", in.logPath, "dropped_bytes", dropped)
				dropped = 0
			}
		}
		if err != nil {
			notice()
			return
		}
	}
}

// formatRate renders a rate in bytes per second: "1M/s".
func formatRate(n int64) string { return isolation.FormatSize(n) + "/s" }
