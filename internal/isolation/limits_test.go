package isolation

import (
	"reflect"
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
		{map[string]string{KeyCoreMax: "0"}, Limits{PidsMax: DefaultPidsMax}, ""},
		{map[string]string{KeyCoreMax: "max"}, Limits{PidsMax: DefaultPidsMax, CoreMax: CoreUnlimited}, ""},
		{map[string]string{KeyCoreMax: "512M"}, Limits{PidsMax: DefaultPidsMax, CoreMax: 512 << 20}, ""},
		{map[string]string{KeyCoreMax: "4096"}, Limits{PidsMax: DefaultPidsMax, CoreMax: 4096}, ""},
		{map[string]string{KeyCoreMax: "big"}, Limits{}, `PIKU_CORE_MAX="big": accepted is a size in bytes or with a K, M, G or T suffix (512M, 2G), 0 for no core files (the default), or max`},
		{map[string]string{KeyCoreMax: "-1"}, Limits{}, `PIKU_CORE_MAX="-1": accepted is a size`},
		{map[string]string{KeyNice: "10"}, Limits{PidsMax: DefaultPidsMax, Nice: map[string]int{"": 10}}, ""},
		{map[string]string{KeyNice: "worker:10"}, Limits{PidsMax: DefaultPidsMax, Nice: map[string]int{"worker": 10}}, ""},
		{map[string]string{KeyNice: "5, worker:19,cron-1:0"}, Limits{PidsMax: DefaultPidsMax, Nice: map[string]int{"": 5, "worker": 19, "cron-1": 0}}, ""},
		{map[string]string{KeyNice: "20"}, Limits{}, `PIKU_NICE="20": accepted is a nice value from 0 to 19 for every kind (10), per kind (worker:10), or both (5,worker:15)`},
		{map[string]string{KeyNice: "-5"}, Limits{}, `PIKU_NICE="-5": accepted is a nice value from 0 to 19`},
		{map[string]string{KeyNice: "worker:low"}, Limits{}, `PIKU_NICE="worker:low": accepted is a nice value`},
		{map[string]string{KeyNice: "wor ker:1"}, Limits{}, `PIKU_NICE="wor ker:1": accepted is a nice value`},
		{map[string]string{KeyNice: "a.b:1"}, Limits{}, `PIKU_NICE="a.b:1": "a.b" is not a kind name; accepted is`},
		{map[string]string{KeyNice: "worker:1,worker:2"}, Limits{}, `PIKU_NICE="worker:1,worker:2": it sets kind "worker" twice; accepted is`},
		{map[string]string{KeyNice: "1,2"}, Limits{}, `PIKU_NICE="1,2": it sets every kind twice; accepted is`},
		{map[string]string{KeyNice: ","}, Limits{}, `PIKU_NICE=",": accepted is a nice value`},
	} {
		get := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
		got, err := ParseLimits(get)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseLimits(%v) err = %v, want %q", tc.env, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseLimits(%v) = %+v, %v, want %+v", tc.env, got, err, tc.want)
		}
	}
}

func TestLimitsString(t *testing.T) {
	l := Limits{MemoryMax: 512 << 20, CPUMax: 1.5, PidsMax: 64}
	if got := l.String(); got != "memory 512M, cpu max 1.5, pids 64" {
		t.Errorf("String = %q", got)
	}
	l = Limits{CoreMax: 1 << 30, Nice: map[string]int{"worker": 15, "": 5, "clock": 10}}
	if got := l.String(); got != "core 1G, nice 5,clock:10,worker:15" {
		t.Errorf("String = %q", got)
	}
	if got := (Limits{CoreMax: CoreUnlimited}).String(); got != "core max" {
		t.Errorf("String = %q", got)
	}
	if got := (Limits{}).String(); got != "none" {
		t.Errorf("String of no limits = %q", got)
	}
}

func TestNiceOf(t *testing.T) {
	l := Limits{Nice: map[string]int{"": 5, "worker": 15}}
	for _, tc := range []struct {
		kind string
		want int
		ok   bool
	}{{"worker", 15, true}, {"web", 5, true}} {
		if n, ok := l.NiceOf(tc.kind); n != tc.want || ok != tc.ok {
			t.Errorf("NiceOf(%s) = %d, %v, want %d, %v", tc.kind, n, ok, tc.want, tc.ok)
		}
	}
	only := Limits{Nice: map[string]int{"worker": 15}}
	if n, ok := only.NiceOf("web"); ok || n != 0 {
		t.Errorf("NiceOf(web) without a value for every kind = %d, %v, want 0, false", n, ok)
	}
	if n, ok := (Limits{}).NiceOf("web"); ok || n != 0 {
		t.Errorf("NiceOf(web) of no PIKU_NICE = %d, %v, want 0, false", n, ok)
	}
}

func TestCheckKinds(t *testing.T) {
	has := func(k string) bool { return k == "web" || k == "worker" }
	if err := (Limits{Nice: map[string]int{"": 3, "worker": 10}}).CheckKinds("3,worker:10", has); err != nil {
		t.Errorf("known kinds: %v", err)
	}
	if err := (Limits{Nice: map[string]int{"": 3, RunKind: 12}}).CheckKinds("3,run:12", has); err != nil {
		t.Errorf("the name of piku run: %v", err)
	}
	err := (Limits{Nice: map[string]int{"wroker": 10}}).CheckKinds("wroker:10", has)
	if err == nil || err.Error() != `PIKU_NICE="wroker:10": the Procfile has no kind "wroker"` {
		t.Errorf("a misspelt kind: %v", err)
	}
}
