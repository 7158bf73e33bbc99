package appconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/piku/piku/internal/layout"
)

// Maintenance is an app's maintenance state, kept in envs/APP/MAINTENANCE
// so that it outlives daemon restarts and deploys.
type Maintenance struct {
	// Message is shown to the app's clients; "" = a default message.
	Message string `json:"message,omitempty"`
	// Stop stops the app's processes for the maintenance.
	Stop bool `json:"stop,omitempty"`
}

// maxMaintenanceFile bounds what ReadMaintenance reads.
const maxMaintenanceFile = 64 << 10

// ReadMaintenance returns app's maintenance state; nil when the app is not
// in maintenance.
func ReadMaintenance(root layout.Root, app string) (*Maintenance, error) {
	path := root.MaintenanceFile(app)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", app, err)
	}
	if len(b) > maxMaintenanceFile {
		return nil, fmt.Errorf("app %q: %s is larger than %d bytes", app, path, maxMaintenanceFile)
	}
	var m Maintenance
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("app %q: %s: %w", app, path, err)
	}
	return &m, nil
}

// WriteMaintenance puts app in maintenance m, atomically.
func WriteMaintenance(root layout.Root, app string, m Maintenance) error {
	if len(m.Message) > maxMaintenanceFile/2 {
		return fmt.Errorf("app %q: the maintenance message is longer than %d bytes", app, maxMaintenanceFile/2)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return layout.WriteFile(root.MaintenanceFile(app), append(b, '\n'), 0o644)
}

// ClearMaintenance takes app out of maintenance; it reports whether the
// app was in maintenance.
func ClearMaintenance(root layout.Root, app string) (bool, error) {
	err := os.Remove(root.MaintenanceFile(app))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("app %q: %w", app, err)
	}
	return true, nil
}
