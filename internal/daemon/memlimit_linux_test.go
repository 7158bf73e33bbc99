package daemon

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCgroupMemoryLimit reads the daemon's own cgroup's memory limit, v2
// and v1, and no limit where there is none.
func TestCgroupMemoryLimit(t *testing.T) {
	for _, tt := range []struct {
		name, cgroup, file, value string
		want                      int64
	}{
		{"v2", "0::/system.slice/piku.service\n", "system.slice/piku.service/memory.max", "268435456\n", 256 << 20},
		{"v2 max", "0::/piku\n", "piku/memory.max", "max\n", 0},
		{"v1", "12:pids:/x\n4:memory:/piku\n1:name=systemd:/y\n", "memory/piku/memory.limit_in_bytes", "268435456\n", 256 << 20},
		{"v1 none", "4:memory:/\n", "memory/memory.limit_in_bytes", "9223372036854771712\n", 0},
		{"v1 cpu,memory", "4:cpu,memory:/a\n", "memory/a/memory.limit_in_bytes", "1048576\n", 1 << 20},
		{"no file", "0::/gone\n", "", "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			proc := filepath.Join(dir, "cgroup")
			if err := os.WriteFile(proc, []byte(tt.cgroup), 0o644); err != nil {
				t.Fatal(err)
			}
			mount := filepath.Join(dir, "fs")
			if tt.file != "" {
				f := filepath.Join(mount, tt.file)
				if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, []byte(tt.value), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := cgroupMemoryLimit(proc, mount); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

// TestMemoryConnLimit: a quarter of the memory, at 3 times the header
// limit and 32 KiB a connection.
func TestMemoryConnLimit(t *testing.T) {
	for _, tt := range []struct {
		mem         int64
		headerBytes int
		want        int
	}{
		{0, 32 << 10, 0},
		{256 << 20, 32 << 10, 512},
		{1 << 30, 32 << 10, 2048},
		{1 << 30, 64 << 10, 1170},
		{1 << 10, 32 << 10, 1},
	} {
		if got := memoryConnLimit(tt.mem, tt.headerBytes); got != tt.want {
			t.Errorf("memoryConnLimit(%d, %d) = %d, want %d", tt.mem, tt.headerBytes, got, tt.want)
		}
	}
}
