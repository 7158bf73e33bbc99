//go:build unix

package cli

import (
	"os"
	"syscall"
)

// inode returns the inode number of path, or 0.
func inode(path string) uint64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
