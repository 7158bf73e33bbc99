package deploy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/piku/piku/internal/procgroup"
)

// Creating a virtualenv with `python -m venv` spends nearly all its time in
// ensurepip installing pip into it (seconds; the venv itself takes a
// fraction of one). So piku makes one virtualenv with pip per interpreter,
// the template, and seeds every new virtualenv from it: `python -m venv
// --without-pip` for the environment itself (its own paths in pyvenv.cfg
// and the activate scripts), then the template's installed packages
// copied in and its scripts (pip, pip3...) copied with the template's path
// in them changed to the new environment's.

// makeVenv creates the virtualenv venv with interpreter py (a program name
// on the app's PATH), seeded from the interpreter's template. When the
// template cannot be made or used it falls back to a plain `py -m venv`.
func (b *build) makeVenv(py, venv string) error {
	tmpl, err := b.venvTemplate(py)
	if err == nil {
		if err = b.run(b.dir, nil, py, "-m", "venv", "--without-pip", venv); err == nil {
			if err = seedVenv(tmpl, venv); err == nil {
				return nil
			}
		}
	}
	b.step("Seeding the virtualenv from a template failed (%v): creating it in full", err)
	if rmErr := os.RemoveAll(venv); rmErr != nil {
		return rmErr
	}
	return b.run(b.dir, nil, py, "-m", "venv", venv)
}

// venvTemplate returns the template virtualenv for py, making it first
// when there is none. It is made in place under a lock, and a marker file
// written last says it is whole; a build that finds no marker (another
// build died making it) makes it again.
func (b *build) venvTemplate(py string) (string, error) {
	key, err := b.interpreterKey(py)
	if err != nil {
		return "", err
	}
	tmpl := b.root.VenvTemplate(key)
	marker := filepath.Join(tmpl, ".piku-template")
	if exists(marker) {
		return tmpl, nil
	}
	unlock, err := Lock(b.ctx, tmpl+".lock", func() { b.step("Waiting for another build making the virtualenv template") })
	if err != nil {
		return "", err
	}
	defer unlock()
	if exists(marker) {
		return tmpl, nil
	}
	if err := os.RemoveAll(tmpl); err != nil {
		return "", err
	}
	b.step("Making a virtualenv template for %s (once per interpreter)", py)
	// The template is shared by every app of this interpreter, so no app
	// may write it: it is made outside the app's confinement (an empty
	// ConfineVar), by the interpreter alone, and only read by the Go code
	// of later builds.
	if err := b.run(b.dir, []string{procgroup.ConfineVar + "="}, py, "-m", "venv", tmpl); err != nil {
		return "", err
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		return "", err
	}
	return tmpl, nil
}

// interpreterKey names the interpreter py resolves to: its file name and a
// digest of its real path, size and modification time, so that an upgraded
// or different python gets a template of its own.
func (b *build) interpreterKey(py string) (string, error) {
	path, err := b.lookPath(py)
	if err != nil {
		return "", fmt.Errorf("%s is not installed", py)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(real + "\x00" + strconv.FormatInt(fi.Size(), 10) + "\x00" + strconv.FormatInt(fi.ModTime().UnixNano(), 10)))
	return filepath.Base(real) + "-" + hex.EncodeToString(sum[:6]), nil
}

// seedVenv copies into venv (made with --without-pip by the same
// interpreter) what the template tmpl has and venv lacks: the packages
// under lib/, and the scripts under bin/ with their #! line pointed at
// venv's own python. Files venv already has are left alone.
func seedVenv(tmpl, venv string) error {
	lib := filepath.Join(tmpl, "lib")
	err := filepath.WalkDir(lib, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(tmpl, p)
		dst := filepath.Join(venv, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			if _, err := os.Lstat(dst); err == nil {
				return nil
			}
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		case !d.Type().IsRegular():
			return nil
		}
		if _, err := os.Lstat(dst); err == nil {
			return nil
		}
		return copyFile(p, dst)
	})
	if err != nil {
		return fmt.Errorf("copying the template's packages: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(tmpl, "bin"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		src, dst := filepath.Join(tmpl, "bin", e.Name()), filepath.Join(venv, "bin", e.Name())
		if !e.Type().IsRegular() {
			continue // python, python3...: venv has its own links
		}
		if _, err := os.Lstat(dst); err == nil {
			continue // activate scripts: venv's own name its own path
		}
		if err := copyScript(src, dst, tmpl, venv); err != nil {
			return fmt.Errorf("copying the template's %s: %w", e.Name(), err)
		}
	}
	return nil
}

// copyScript copies the script src to dst with every mention of the
// template's directory (the #! line, and the exec line pip writes instead
// when the path is too long for #!) changed to venv's.
func copyScript(src, dst, tmpl, venv string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	b = bytes.ReplaceAll(b, []byte(tmpl+string(filepath.Separator)), []byte(venv+string(filepath.Separator)))
	return os.WriteFile(dst, b, fi.Mode().Perm())
}

// copyFile copies src to dst (which must not exist) with src's
// permission bits.
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	_, err = io.Copy(out, in)
	return err
}
