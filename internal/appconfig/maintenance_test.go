package appconfig

import (
	"os"
	"strings"
	"testing"

	"github.com/piku/piku/internal/layout"
)

func TestMaintenanceFile(t *testing.T) {
	root, err := layout.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if m, err := ReadMaintenance(root, "app"); m != nil || err != nil {
		t.Fatalf("no file: %v %v", m, err)
	}
	if was, err := ClearMaintenance(root, "app"); was || err != nil {
		t.Fatalf("clear without file: %v %v", was, err)
	}
	want := Maintenance{Message: "back at 5", Stop: true}
	if err := WriteMaintenance(root, "app", want); err != nil {
		t.Fatal(err)
	}
	if m, err := ReadMaintenance(root, "app"); err != nil || m == nil || *m != want {
		t.Fatalf("read %+v %v, want %+v", m, err, want)
	}
	if was, err := ClearMaintenance(root, "app"); !was || err != nil {
		t.Fatalf("clear: %v %v", was, err)
	}
	if err := os.WriteFile(root.MaintenanceFile("app"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMaintenance(root, "app"); err == nil || !strings.Contains(err.Error(), "MAINTENANCE") {
		t.Fatalf("bad file: %v, want an error naming the file", err)
	}
	if err := WriteMaintenance(root, "app", Maintenance{Message: strings.Repeat("x", 1<<20)}); err == nil {
		t.Fatal("a huge message was written")
	}
}
