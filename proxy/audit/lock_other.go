//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package audit

import "os"

// lockFile opens the lock file. Platforms without flock get no protection against a second
// process appending to the same chain.
func lockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
}

// syncDir is a no-op where directories cannot be fsynced.
func syncDir(string) error { return nil }
