package procfile

import (
	"strings"
	"testing"
	"time"
)

func TestParseScheduleErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"", "expected 5 fields"},
		{"* * * *", "expected 5 fields"},
		{"* * * * * *", "expected 5 fields"},
		{"60 * * * *", "minute \"60\": out of range 0-59"},
		{"* 24 * * *", "hour \"24\": out of range 0-23"},
		{"* * 0 * *", "day of month \"0\": out of range 1-31"},
		{"* * 32 * *", "out of range 1-31"},
		{"* * * 13 *", "month \"13\": out of range 1-12"},
		{"* * * * 8", "day of week \"8\": out of range 0-7"},
		{"*/0 * * * *", "step \"0\""},
		{"*/x * * * *", "step \"x\""},
		{"5-2 * * * *", "range starts after it ends"},
		{"1-x * * * *", "must be two numbers"},
		{"a * * * *", "is not a number"},
		{"-1 * * * *", "must be two numbers"},
		{"1,,2 * * * *", "empty list item"},
		{"0 0 30 2 *", "never runs"},
		{"0 0 31 4,6,9,11 *", "never runs"},
		{"99999 * * * *", "is not a number"},
	}
	for _, tt := range tests {
		_, err := ParseSchedule(tt.spec)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSchedule(%q) = %v, want error containing %q", tt.spec, err, tt.want)
		}
	}
}

func TestScheduleString(t *testing.T) {
	s, err := ParseSchedule("  */5   1-3  *  * 7 ")
	if err != nil {
		t.Fatal(err)
	}
	if s.String() != "*/5 1-3 * * 7" {
		t.Errorf("String() = %q", s)
	}
}

func TestScheduleNext(t *testing.T) {
	utc := func(s string) time.Time {
		tm, err := time.Parse("2006-01-02 15:04:05", s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		spec, after, want string
	}{
		{"* * * * *", "2024-01-01 00:00:00", "2024-01-01 00:01:00"},
		{"* * * * *", "2024-01-01 00:00:59", "2024-01-01 00:01:00"},
		{"*/5 * * * *", "2024-01-01 00:03:10", "2024-01-01 00:05:00"},
		{"*/5 * * * *", "2024-01-01 00:55:00", "2024-01-01 01:00:00"},
		{"0 * * * *", "2024-01-01 23:30:00", "2024-01-02 00:00:00"},
		{"30 2 * * *", "2024-01-01 02:30:00", "2024-01-02 02:30:00"},
		{"0 0 1 * *", "2024-01-31 12:00:00", "2024-02-01 00:00:00"},
		{"0 0 31 * *", "2024-04-01 00:00:00", "2024-05-31 00:00:00"},     // April has 30 days
		{"0 0 29 2 *", "2024-03-01 00:00:00", "2028-02-29 00:00:00"},     // next leap year
		{"0 0 29 2 *", "2096-03-01 00:00:00", "2104-02-29 00:00:00"},     // 2100 is not a leap year
		{"0 12 28-31 2 *", "2023-02-28 13:00:00", "2024-02-28 12:00:00"}, // 2023 has no Feb 29
		{"0 0 * * 0", "2024-01-01 00:00:00", "2024-01-07 00:00:00"},      // Monday -> Sunday
		{"0 0 * * 7", "2024-01-01 00:00:00", "2024-01-07 00:00:00"},      // 7 is Sunday
		{"0 0 * * 5-7", "2024-01-01 00:00:00", "2024-01-05 00:00:00"},
		{"0 0 13 * 5", "2024-01-01 00:00:00", "2024-01-05 00:00:00"}, // OR: a Friday comes before the 13th
		{"0 0 13 * 5", "2024-01-06 00:00:00", "2024-01-12 00:00:00"},
		{"0 0 */10 * 1", "2024-01-02 00:00:00", "2024-03-11 00:00:00"}, // "*" start: AND (the 1st, 11th, 21st or 31st that is a Monday)
		{"0 0 1 * */2", "2024-01-02 00:00:00", "2024-02-01 00:00:00"},  // AND: Feb 1 2024 is a Thursday
		{"15,45 9-17/4 * * 1-5", "2024-01-05 17:50:00", "2024-01-08 09:15:00"},
		{"0 0 1 1 *", "2024-12-31 23:59:00", "2025-01-01 00:00:00"},
		{"59 23 31 12 *", "2024-12-31 23:59:00", "2025-12-31 23:59:00"},
		{"5/20 * * * *", "2024-01-01 00:26:00", "2024-01-01 00:45:00"},
	}
	for _, tt := range tests {
		s, err := ParseSchedule(tt.spec)
		if err != nil {
			t.Errorf("ParseSchedule(%q): %v", tt.spec, err)
			continue
		}
		if got := s.Next(utc(tt.after)); !got.Equal(utc(tt.want)) {
			t.Errorf("%q.Next(%s) = %s, want %s", tt.spec, tt.after, got.Format(time.DateTime), tt.want)
		}
	}
}

func TestScheduleNextDST(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	// 2024-03-31 02:00 does not exist in Berlin: the clock jumps to 03:00.
	s, _ := ParseSchedule("30 2 * * *")
	got := s.Next(time.Date(2024, 3, 31, 1, 0, 0, 0, loc))
	if !got.After(time.Date(2024, 3, 31, 1, 0, 0, 0, loc)) {
		t.Errorf("Next went backwards: %s", got)
	}
	// Every result is strictly after its input, hour by hour across the
	// autumn change.
	every, _ := ParseSchedule("*/7 * * * *")
	tm := time.Date(2024, 10, 26, 22, 0, 0, 0, loc)
	for range 300 {
		next := every.Next(tm)
		if !next.After(tm) || next.Sub(tm) > 8*time.Minute {
			t.Fatalf("Next(%s) = %s", tm, next)
		}
		tm = next
	}
}
