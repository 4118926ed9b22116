package audit

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// rotatedLayout is the UTC timestamp in a rotated file's name: <path>.<timestamp>.<seq>.
const rotatedLayout = "20060102T150405Z"

// rotated is a rotated file of the log.
type rotated struct {
	path string
	seq  int
}

// rotatedName is the name a file rotated at t with sequence number seq gets.
func rotatedName(path string, t time.Time, seq int) string {
	return fmt.Sprintf("%s.%s.%06d", path, t.UTC().Format(rotatedLayout), seq)
}

// parseRotated recognises the name of a file rotated from the active file named base; at is
// when it was rotated, so no line in it is newer (clocks permitting).
func parseRotated(base, name string) (at time.Time, seq int, ok bool) {
	rest, found := strings.CutPrefix(name, base+".")
	if !found {
		return time.Time{}, 0, false
	}
	ts, num, found := strings.Cut(rest, ".")
	if !found || len(ts) != len(rotatedLayout) || len(num) < 6 {
		return time.Time{}, 0, false
	}
	at, err := time.Parse(rotatedLayout, ts)
	if err != nil {
		return time.Time{}, 0, false
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return time.Time{}, 0, false
		}
	}
	seq, err = strconv.Atoi(num)
	if err != nil {
		return time.Time{}, 0, false
	}
	return at, seq, true
}

// listRotated returns the rotated files of the log at path in chain order (by sequence number,
// which keeps the order right even when the clock stepped back between rotations).
func listRotated(path string) ([]rotated, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: list %s: %w", dir, err)
	}
	var out []rotated
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		_, seq, ok := parseRotated(base, e.Name())
		if !ok {
			continue
		}
		out = append(out, rotated{path: filepath.Join(filepath.Dir(path), e.Name()), seq: seq})
	}
	slices.SortFunc(out, func(a, b rotated) int {
		if a.seq != b.seq {
			return a.seq - b.seq
		}
		return strings.Compare(a.path, b.path)
	})
	return out, nil
}

// Files returns the files of the log whose active file is path, in chain order: the rotated
// files oldest first, then the active file. It returns an error wrapping fs.ErrNotExist when
// there is none of them.
func Files(path string) ([]string, error) {
	rot, err := listRotated(path)
	if err != nil {
		return nil, err
	}
	files := make([]string, 0, len(rot)+1)
	for _, r := range rot {
		files = append(files, r.path)
	}
	if _, err := os.Stat(path); err == nil {
		files = append(files, path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("audit: %s: %w", path, fs.ErrNotExist)
	}
	return files, nil
}

// tail describes the end of a log file.
type tail struct {
	head    string // hash of the last line; "" when the file has no complete line
	end     int64  // offset just past the last complete line
	torn    []byte // bytes after the last complete line (an unfinished write), at most maxLine
	tornLen int64
}

// errNotTorn says the end of a file is damaged in a way a crash does not explain.
var errNotTorn = errors.New("the end of the file is not a valid audit line; inspect it with veil audit verify and move the file aside")

// readTail finds the last complete line of the file r of the given size, checks that it is a
// valid audit line, and returns what follows it. What follows may only be an unfinished line: a
// write cut short by a crash or a full disk (it starts with '{', or with zero bytes where the
// file system extended the file before the data reached the disk). Anything else is an error.
func readTail(r io.ReaderAt, size int64) (tail, error) {
	window := int64(64 << 10)
	for {
		window = min(window, size)
		off := size - window
		buf := make([]byte, window)
		if _, err := r.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return tail{}, fmt.Errorf("read: %w", err)
		}
		nl := bytes.LastIndexByte(buf, '\n')
		if nl < 0 && off > 0 && size-off <= maxLine+1 {
			window *= 4
			continue
		}
		t := tail{end: off + int64(nl) + 1}
		if nl < 0 {
			t.end = 0
		}
		if err := t.setTorn(buf[nl+1:]); err != nil {
			return tail{}, err
		}
		if nl < 0 {
			return t, nil
		}
		start := bytes.LastIndexByte(buf[:nl], '\n') + 1
		if start == 0 && off > 0 {
			if size-off > 2*(maxLine+1) {
				return tail{}, errNotTorn
			}
			window *= 4
			continue
		}
		p, why := checkLine(sha256.New(), buf[start:nl])
		if why != "" {
			return tail{}, fmt.Errorf("last line: %s: %w", why, errNotTorn)
		}
		t.head = string(p.hash)
		return t, nil
	}
}

func (t *tail) setTorn(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if len(b) > maxLine || (b[0] != '{' && b[0] != 0) {
		return errNotTorn
	}
	t.torn = bytes.Clone(b)
	t.tornLen = int64(len(b))
	return nil
}

// active is the active file, open for appending.
type active struct {
	f    *os.File
	info os.FileInfo
	size int64
	head string // hash of the last line on disk: of the active file, else of the newest rotated file, else ZeroHash
	torn *tail  // set when an unfinished last line was cut off
}

// openActive opens (creating it if needed) the active file for appending, cuts off an
// unfinished last line, and finds the chain head on disk.
func openActive(path string) (*active, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	a, err := resume(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: sync directory of %s: %w", path, err)
	}
	return a, nil
}

func resume(path string, f *os.File) (*active, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	a := &active{f: f, info: info, size: info.Size()}
	t, err := readTail(f, a.size)
	if err != nil {
		return nil, fmt.Errorf("audit: %s: %w", path, err)
	}
	if t.tornLen > 0 {
		if err := f.Truncate(t.end); err != nil {
			return nil, fmt.Errorf("audit: cut unfinished line of %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("audit: sync %s: %w", path, err)
		}
		a.size = t.end
		a.torn = &t
	}
	a.head = t.head
	if a.head != "" {
		return a, nil
	}
	a.head = ZeroHash
	rot, err := listRotated(path)
	if err != nil {
		return nil, err
	}
	if len(rot) == 0 {
		return a, nil
	}
	newest := rot[len(rot)-1].path
	head, err := lastHash(newest)
	if err != nil {
		return nil, err
	}
	if head != "" {
		a.head = head
	}
	return a, nil
}

// lastHash is the hash of the last line of a rotated file ("" when it is empty). A rotated file
// was fsynced before it was renamed, so an unfinished last line in it is an error.
func lastHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("audit: %w", err)
	}
	t, err := readTail(f, info.Size())
	if err == nil && t.tornLen > 0 {
		err = errNotTorn
	}
	if err != nil {
		return "", fmt.Errorf("audit: %s: %w", path, err)
	}
	return t.head, nil
}
