package isolation

import (
	"strings"
	"testing"
)

func TestParseLimits(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want Limits
		err  string
	}{
		{nil, Limits{PidsMax: DefaultPidsMax}, ""},
		{map[string]string{KeyMemoryMax: "512M", KeyMemoryHigh: "384m", KeyCPUWeight: "50", KeyCPUMax: "0.5", KeyPidsMax: "64", KeyNoFile: "4096"},
			Limits{MemoryMax: 512 << 20, MemoryHigh: 384 << 20, CPUWeight: 50, CPUMax: 0.5, PidsMax: 64, NoFile: 4096}, ""},
		{map[string]string{KeyMemoryMax: "2GiB", KeyPidsMax: "max", KeyCPUMax: "max"}, Limits{MemoryMax: 2 << 30}, ""},
		{map[string]string{KeyMemoryMax: " "}, Limits{PidsMax: DefaultPidsMax}, ""},
		{map[string]string{KeyMemoryMax: "lots"}, Limits{}, `PIKU_MEMORY_MAX="lots": accepted is a size of at least 4M`},
		{map[string]string{KeyMemoryMax: "1K"}, Limits{}, `PIKU_MEMORY_MAX="1K": accepted is a size of at least 4M`},
		{map[string]string{KeyMemoryMax: "256M", KeyMemoryHigh: "512M"}, Limits{}, "PIKU_MEMORY_HIGH is above PIKU_MEMORY_MAX"},
		{map[string]string{KeyCPUWeight: "0"}, Limits{}, `PIKU_CPU_WEIGHT="0": accepted is a whole number from 1 to 10000`},
		{map[string]string{KeyCPUMax: "-1"}, Limits{}, `PIKU_CPU_MAX="-1": accepted is a number of CPUs`},
		{map[string]string{KeyPidsMax: "3"}, Limits{}, `PIKU_PIDS_MAX="3": accepted is a whole number from 16 to 4194304, or max`},
		{map[string]string{KeyNoFile: "many"}, Limits{}, `PIKU_NOFILE="many": accepted is a whole number from 64 to 1048576`},
		{map[string]string{LandlockKey: "off"}, Limits{PidsMax: DefaultPidsMax}, ""},
		{map[string]string{LandlockKey: "on"}, Limits{PidsMax: DefaultPidsMax}, ""},
		{map[string]string{LandlockKey: "no"}, Limits{}, `PIKU_LANDLOCK="no": accepted is on (the default: the app is confined to its own files) or off`},
	} {
		get := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
		got, err := ParseLimits(get)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseLimits(%v) err = %v, want %q", tc.env, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseLimits(%v) = %+v, %v, want %+v", tc.env, got, err, tc.want)
		}
	}
}

func TestLimitsString(t *testing.T) {
	l := Limits{MemoryMax: 512 << 20, CPUMax: 1.5, PidsMax: 64}
	if got := l.String(); got != "memory 512M, cpu max 1.5, pids 64" {
		t.Errorf("String = %q", got)
	}
	if got := (Limits{}).String(); got != "none" {
		t.Errorf("String of no limits = %q", got)
	}
}
