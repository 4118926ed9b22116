package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debounce is how long Watch waits after the last change before it reloads, so an editor's
// write-rename-chmod sequence or a `cp -r` of many files is one reload.
const debounce = 200 * time.Millisecond

// Watch reloads the policy whenever something under Options.Dir changes, 200ms after the
// last change. It watches Dir and every directory below it (directories created later
// included); reload outcomes go to the logger and OnReload. It returns nil when ctx is
// done, and an error when Dir is not set or cannot be watched.
func (e *Engine) Watch(ctx context.Context) error {
	if e.dir == "" {
		return errors.New("policy: watch: no policy directory (embedded policy)")
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("policy: watch: %w", err)
	}
	defer w.Close()
	if err := watchTree(w, e.dir); err != nil {
		return fmt.Errorf("policy: watch %s: %w", e.dir, err)
	}

	timer := time.NewTimer(debounce)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("policy: watch: watcher closed")
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					if err := watchTree(w, ev.Name); err != nil {
						e.log.LogAttrs(ctx, slog.LevelWarn, "policy watch: add directory",
							slog.String("dir", ev.Name), slog.Any("error", err))
					}
				}
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("policy: watch: watcher closed")
			}
			e.log.LogAttrs(ctx, slog.LevelWarn, "policy watch", slog.Any("error", err))
			timer.Reset(debounce)
		case <-timer.C:
			// Reload logs and reports its own outcome; a refused tree keeps the old policy.
			_ = e.Reload(ctx)
		}
	}
}

// watchTree adds dir and every directory below it to w, skipping hidden directories the
// loader skips too.
func watchTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir
		}
		return w.Add(p)
	})
}
