package procfile

import (
	"fmt"
	"strings"
	"testing"
)

// TestBounds checks that what one app's files can make the daemon do is
// bounded, and that the refusal names the file and line at fault.
func TestBounds(t *testing.T) {
	doubling := "A=xxxxxxxx\n" + strings.Repeat("A=$A$A\n", 40)
	manyKeys := ""
	for i := range 300 {
		manyKeys += fmt.Sprintf("K%d=\"%s\"\n", i, strings.Repeat("v", 4000))
	}
	manyKinds := ""
	for i := range MaxKinds + 1 {
		manyKinds += fmt.Sprintf("w%d: sleep 1000\n", i)
	}
	okKinds := ""
	for i := range MaxKinds {
		okKinds += fmt.Sprintf("w%d: sleep 1000\n", i)
	}
	tests := []struct {
		name, file, in, want string
	}{
		{"doubling", "ENV", doubling,
			fmt.Sprintf("ENV line 16: A is longer than %d bytes after expansion", MaxValue)},
		{"doubling in quotes", "ENV", "A=xxxxxxxx\n" + strings.Repeat("A=\"$A${A}\"\n", 40),
			fmt.Sprintf("ENV line 16: A is longer than %d bytes after expansion", MaxValue)},
		{"long literal", "ENV", "A=" + strings.Repeat("x", MaxValue+1) + "\n",
			fmt.Sprintf("ENV line 1: A is longer than %d bytes after expansion", MaxValue)},
		{"whole environment", "ENV", manyKeys,
			fmt.Sprintf("ENV line 262: the variables so far are larger than %d bytes", MaxEnv)},
		{"kinds", "Procfile", manyKinds,
			fmt.Sprintf("Procfile line %d: more than %d process kinds", MaxKinds+1, MaxKinds)},
		{"kinds at the bound", "Procfile", okKinds, ""},
		{"scale", "SCALING", fmt.Sprintf("web:%d\n", MaxScale+1),
			fmt.Sprintf("SCALING line 1: web: count \"%d\" must be a whole number from 0 to %d", MaxScale+1, MaxScale)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			switch tt.file {
			case "ENV":
				_, err = ParseEnv(strings.NewReader(tt.in), tt.file, nil)
			case "Procfile":
				_, err = Parse(strings.NewReader(tt.in), tt.file)
			case "SCALING":
				_, err = ParseScaling(strings.NewReader(tt.in), tt.file)
			}
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("error = %q, want %q", got, tt.want)
			}
		})
	}
}
