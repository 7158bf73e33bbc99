package procfile

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed five-field cron schedule: minute, hour, day of month,
// month and day of week.
type Schedule struct {
	spec                          string
	minute, hour, dom, month, dow uint64 // bit i set: value i matches
	domStar, dowStar              bool   // the field started with '*'
}

type cronField struct {
	name     string
	min, max int
}

var cronFields = [5]cronField{
	{"minute", 0, 59},
	{"hour", 0, 23},
	{"day of month", 1, 31},
	{"month", 1, 12},
	{"day of week", 0, 7}, // 7 is Sunday too
}

// maxDays is the longest each month can be (February in a leap year).
var maxDays = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// ParseSchedule parses a five-field cron schedule: minute (0-59), hour
// (0-23), day of month (1-31), month (1-12) and day of week (0-6, 7 is
// Sunday too). Each field is a comma-separated list of "*", "*/n", "a",
// "a-b", "a-b/n" or "a/n" (a to the field's maximum, every n). Names (JAN,
// MON) and macros (@daily) are not accepted: piku's Procfile does not
// accept them either. A schedule that can never fire ("0 0 30 2 *") is an
// error.
func ParseSchedule(spec string) (*Schedule, error) {
	fields := strings.Fields(spec)
	if len(fields) != 5 {
		return nil, fmt.Errorf("schedule %q: expected 5 fields (minute hour day-of-month month day-of-week), got %d", spec, len(fields))
	}
	s := &Schedule{spec: strings.Join(fields, " ")}
	sets := [5]*uint64{&s.minute, &s.hour, &s.dom, &s.month, &s.dow}
	for i, f := range fields {
		set, err := parseCronField(f, cronFields[i])
		if err != nil {
			return nil, fmt.Errorf("schedule %q: %w", s.spec, err)
		}
		*sets[i] = set
	}
	if s.dow&(1<<7) != 0 {
		s.dow = s.dow&^(1<<7) | 1
	}
	s.domStar = fields[2][0] == '*'
	s.dowStar = fields[4][0] == '*'
	// With the day of week unrestricted (or OR-ed in), only the day of
	// month decides; refuse days that no chosen month has.
	if s.dowStar {
		shortest := 32
		for d := 1; d <= 31; d++ {
			if s.dom&(1<<d) != 0 {
				shortest = d
				break
			}
		}
		ok := false
		for m := 1; m <= 12; m++ {
			if s.month&(1<<m) != 0 && maxDays[m] >= shortest {
				ok = true
			}
		}
		if !ok {
			return nil, fmt.Errorf("schedule %q never runs: no chosen month has day %d", s.spec, shortest)
		}
	}
	return s, nil
}

func parseCronField(f string, cf cronField) (uint64, error) {
	var set uint64
	for part := range strings.SplitSeq(f, ",") {
		if part == "" {
			return 0, fmt.Errorf("%s %q: empty list item", cf.name, f)
		}
		lo, hi, step := cf.min, cf.max, 1
		rng, stepStr, hasStep := strings.Cut(part, "/")
		if hasStep {
			n, err := cronNumber(stepStr)
			if err != nil || n < 1 {
				return 0, fmt.Errorf("%s %q: step %q must be a number from 1", cf.name, part, stepStr)
			}
			step = n
		}
		switch {
		case rng == "*":
			if cf.name == "day of week" {
				hi = 6 // "*" is every day once; 7 would repeat Sunday
			}
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			x, err1 := cronNumber(a)
			y, err2 := cronNumber(b)
			if err1 != nil || err2 != nil {
				return 0, fmt.Errorf("%s %q: range %q must be two numbers", cf.name, part, rng)
			}
			lo, hi = x, y
		default:
			x, err := cronNumber(rng)
			if err != nil {
				return 0, fmt.Errorf("%s %q: %q is not a number or '*'", cf.name, part, rng)
			}
			lo = x
			if !hasStep {
				hi = x
			}
		}
		if lo < cf.min || lo > cf.max || hi < cf.min || hi > cf.max {
			return 0, fmt.Errorf("%s %q: out of range %d-%d", cf.name, part, cf.min, cf.max)
		}
		if lo > hi {
			return 0, fmt.Errorf("%s %q: range starts after it ends", cf.name, part)
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
	}
	return set, nil
}

// cronNumber parses a small decimal number (digits only, no sign).
func cronNumber(s string) (int, error) {
	if s == "" || len(s) > 4 {
		return 0, fmt.Errorf("bad number %q", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("bad number %q", s)
		}
	}
	return strconv.Atoi(s)
}

// String returns the schedule's five fields separated by single spaces.
func (s *Schedule) String() string { return s.spec }

// Next returns the first time after after (to the minute, in after's
// location) that the schedule matches. When both the day of month and the
// day of week are restricted (neither starts with '*'), a day matches if
// either does, as in standard cron. Next returns the zero time if nothing
// matches within ten years, which ParseSchedule makes impossible for the
// schedules it returns.
func (s *Schedule) Next(after time.Time) time.Time {
	loc := after.Location()
	// The next whole minute strictly after after.
	t := after.Add(time.Minute - time.Duration(after.Second())*time.Second - time.Duration(after.Nanosecond()))
	limit := t.Year() + 10
	for t.Year() <= limit {
		if s.month&(1<<int(t.Month())) == 0 {
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, loc)
			continue
		}
		if !s.dayMatches(t) {
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
			continue
		}
		if s.hour&(1<<t.Hour()) == 0 {
			// Absolute arithmetic always moves forward, also across
			// daylight saving changes.
			t = t.Add(time.Duration(60-t.Minute()) * time.Minute)
			continue
		}
		if s.minute&(1<<t.Minute()) == 0 {
			// Jump to the next matching minute of this hour, or the
			// next hour.
			rest := s.minute >> (t.Minute() + 1) << (t.Minute() + 1)
			if rest == 0 {
				t = t.Add(time.Duration(60-t.Minute()) * time.Minute)
			} else {
				t = t.Add(time.Duration(bits.TrailingZeros64(rest)-t.Minute()) * time.Minute)
			}
			continue
		}
		return t
	}
	return time.Time{}
}

func (s *Schedule) dayMatches(t time.Time) bool {
	dom := s.dom&(1<<t.Day()) != 0
	dow := s.dow&(1<<int(t.Weekday())) != 0
	if s.domStar || s.dowStar {
		return dom && dow
	}
	return dom || dow
}
