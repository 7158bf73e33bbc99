package supervisor

import "io"

// copyOutput copies the output of an instance's process from r to its log
// w until r ends. A chunk that cannot be written (a full disk, a log
// folder gone) is dropped and counted instead of ending the copy: closing
// the pipe would kill the process with SIGPIPE, or block it once the pipe
// is full. The next chunk is tried again, so logging resumes by itself
// when the disk has room. The daemon log says when dropping starts and
// when it ends; `piku ps` shows the count.
func (in *instance) copyOutput(w io.Writer, r io.Reader) {
	buf := make([]byte, 32<<10)
	failing := false
	var dropped int64 // in the current failing spell
	for {
		n, err := r.Read(buf)
		if n > 0 {
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
			return
		}
	}
}
