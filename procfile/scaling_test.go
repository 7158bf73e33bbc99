package procfile

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseScaling(t *testing.T) {
	tests := []struct {
		in   string
		want Scaling
	}{
		{"", Scaling{}},
		{"web:1\nworker:2\n", Scaling{"web": 1, "worker": 2}},
		{"# c\n\n web : 3 \r\nworker=0\n", Scaling{"web": 3, "worker": 0}},
		{"web:1\nweb:4\n", Scaling{"web": 4}},
		{"cron-x:64", Scaling{"cron-x": 64}},
	}
	for _, tt := range tests {
		got, err := ParseScaling(strings.NewReader(tt.in), "SCALING")
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseScaling(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseScalingErrors(t *testing.T) {
	tests := []struct {
		in   string
		line int
		want string
	}{
		{"web 1\n", 1, "missing ':'"},
		{"web:1\n:2\n", 2, `invalid process kind ""`},
		{"w b:2\n", 1, "invalid process kind"},
		{"web:\n", 1, "missing count"},
		{"web:-1\n", 1, "whole number"},
		{"web:+1\n", 1, "whole number"},
		{"web:1.5\n", 1, "whole number"},
		{"web:1001\n", 1, "whole number"},
		{"web:99999999999999999999\n", 1, "whole number"},
	}
	for _, tt := range tests {
		_, err := ParseScaling(strings.NewReader(tt.in), "SCALING")
		var pe *Error
		if !errors.As(err, &pe) || pe.Line != tt.line || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseScaling(%q) = %v, want line %d containing %q", tt.in, err, tt.line, tt.want)
		}
	}
}

func TestWriteScaling(t *testing.T) {
	var buf bytes.Buffer
	s := Scaling{"worker": 2, "web": 1, "cron1": 0}
	if err := WriteScaling(&buf, s); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "cron1:0\nweb:1\nworker:2\n" {
		t.Errorf("WriteScaling = %q", buf.String())
	}
	back, err := ParseScaling(&buf, "SCALING")
	if err != nil || !reflect.DeepEqual(back, s) {
		t.Errorf("round trip = %v, %v", back, err)
	}
	for _, bad := range []Scaling{{"a b": 1}, {"web": -1}, {"web": MaxScale + 1}} {
		if err := WriteScaling(&buf, bad); err == nil {
			t.Errorf("WriteScaling(%v) succeeded", bad)
		}
	}
}
