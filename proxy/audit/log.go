package audit

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Log. The zero value of every field but Path means the default shown.
type Options struct {
	// Path is the active file, e.g. ./veil-audit.jsonl. Required.
	Path string
	// MaxBytes rotates the active file before a line would make it larger than this; 0 = 256 MiB.
	// A line larger than MaxBytes gets a file of its own.
	MaxBytes int64
	// MaxFiles is how many rotated files are kept; the oldest beyond it are deleted after a
	// rotation. 0 = keep all: audit is never deleted unless asked for.
	MaxFiles int
	// FlushInterval is the group-commit window: records from Append are written and fsynced
	// together at most this long after the first of them arrived; 0 = 50ms. AppendSync does not
	// wait for the window: its record is written with whatever is queued at that moment.
	FlushInterval time.Duration
	// RetryInterval is how often a log whose file cannot be written tries to reopen it;
	// 0 = 2s.
	RetryInterval time.Duration
	// QueueSize is how many records may wait for the writer; Append blocks while the queue is
	// full (backpressure). 0 = 8192.
	QueueSize int
	// MaxBacklog is how many records from Append are held in memory while the file cannot be
	// written, to be written when it can again; records beyond it are dropped and counted (see
	// Dropped). 0 = 10000.
	MaxBacklog int
	// Logger receives write failures (once per failure, not per record), recoveries and
	// rotations; nil = discard.
	Logger *slog.Logger
	// Now is the clock for records without a time and for rotated file names; nil = time.Now.
	Now func() time.Time
}

// Defaults for Options.
const (
	DefaultMaxBytes      = 256 << 20
	DefaultFlushInterval = 50 * time.Millisecond
	DefaultRetryInterval = 2 * time.Second
	DefaultQueueSize     = 8192
	DefaultMaxBacklog    = 10000
)

// maxBatch is how many bytes of pending records make the writer flush before the window ends.
const maxBatch = 1 << 20

var (
	// ErrUnavailable is wrapped by the errors a Log returns while it cannot write its file.
	ErrUnavailable = errors.New("audit: log unavailable")
	// ErrClosed is returned by a Log after Close.
	ErrClosed = errors.New("audit: log closed")
)

// Log appends records to a hash-chained, append-only file. A single writer goroutine assigns
// each record its place in the chain, so any number of goroutines may append concurrently.
type Log struct {
	path       string
	maxBytes   int64
	maxFiles   int
	flushEvery time.Duration
	retryEvery time.Duration
	maxBacklog int
	log        *slog.Logger
	now        func() time.Time

	mu     sync.RWMutex // held for reading while sending on queue, for writing to close it
	closed bool
	queue  chan *entry
	done   chan struct{} // closed when the writer has finished

	state   atomic.Pointer[stickyError] // nil while the file is writable
	dropped atomic.Uint64

	lock      *os.File
	closeOnce sync.Once
	closeErr  error

	// Owned by the writer goroutine (and by Open before it starts).
	f            *os.File    // nil while broken
	info         os.FileInfo // identity of f, to notice the file being removed or replaced
	size         int64
	head         string // hash of the last line known to be on disk
	seq          int    // next rotation sequence number
	pending      []*entry
	pendingBytes int
	syncWaiting  bool
	uncertain    []*entry // the entries of a write that failed: on disk or not, recover tells
	reported     uint64   // drops already recorded in the chain
	lastRetry    string   // last recovery error logged
	buf          []byte
	h            hash.Hash
	flushT       *time.Timer
	flushArmed   bool
	retryT       *time.Timer
}

type stickyError struct{ err error }

// entry is a record on its way to the file.
type entry struct {
	line  []byte      // encoded, ending in "\n"; prev and hash filled in by chain
	sync  bool        // from AppendSync
	done  chan result // AppendSync only; buffered
	state atomic.Int32
	prev  string
	hash  string
	saved bool // found on disk after a failed write
	// regen marks an event the writer derives again from its state when the event is lost in
	// a failed write (EventGap, EventDropped), so a failed write discards it.
	regen bool
	// dropsTo is, for an EventDropped line, the Dropped count it accounts for.
	dropsTo uint64
}

// entry states, for AppendSync entries whose caller may give up.
const (
	statePending int32 = iota
	stateTaken
	stateAbandoned
)

type result struct {
	prev, hash string
	err        error
}

func (e *entry) finish(r result) {
	if e.done != nil {
		select {
		case e.done <- r:
		default:
		}
	}
}

// Open opens the log at o.Path, creating the file if needed, and starts its writer. The chain
// continues from the last line of the active file, or of the newest rotated file when the active
// file is empty or missing, or starts at ZeroHash.
//
// A last line cut short by a crash (no newline) is cut off the file, and the first line Open
// appends is an EventTornLine record carrying its size, SHA-256 and bytes, so the chain stays
// verifiable and nothing written is lost from the record. A file that ends in any other way
// than a valid line or such an unfinished line is not opened: that is damage or tampering for a
// person to look at.
//
// Open takes an exclusive lock on o.Path + ".lock": two processes never append to one chain.
func Open(o Options) (*Log, error) {
	if o.Path == "" {
		return nil, errors.New("audit: open: no path")
	}
	l := &Log{
		path:       o.Path,
		maxBytes:   cmpOr(o.MaxBytes, DefaultMaxBytes),
		maxFiles:   o.MaxFiles,
		flushEvery: cmpOr(o.FlushInterval, DefaultFlushInterval),
		retryEvery: cmpOr(o.RetryInterval, DefaultRetryInterval),
		maxBacklog: cmpOr(o.MaxBacklog, DefaultMaxBacklog),
		log:        o.Logger,
		now:        o.Now,
		queue:      make(chan *entry, cmpOr(o.QueueSize, DefaultQueueSize)),
		done:       make(chan struct{}),
		h:          sha256.New(),
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	lock, err := lockFile(o.Path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("audit: open: lock: %w", err)
	}
	l.lock = lock
	rot, err := listRotated(o.Path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	l.seq = 1
	if len(rot) > 0 {
		l.seq = rot[len(rot)-1].seq + 1
	}
	a, err := openActive(o.Path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	l.install(a)
	if a.torn != nil {
		l.pending = withEvents([]*entry{l.tornEvent(a)}, nil)
	}
	l.flushT = time.NewTimer(time.Hour)
	l.flushT.Stop()
	l.retryT = time.NewTimer(time.Hour)
	l.retryT.Stop()
	go l.run()
	return l, nil
}

func cmpOr[T int | int64 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Append queues rec to be written with the next batch and returns without waiting for the
// disk; it blocks only while the queue is full. rec is encoded before Append returns, so the
// caller may reuse it. A zero rec.Time is set to the current time; Prev and Hash are assigned by
// the log.
//
// Append returns an error wrapping ErrUnavailable while the file cannot be written. The record
// is still kept: up to MaxBacklog records are held in memory and written when the file can be
// written again, and the ones beyond are dropped, counted by Dropped and recorded in the chain
// as an EventDropped line. Append never needs to be retried.
func (l *Log) Append(rec *Record) error {
	e, err := l.newEntry(rec, false)
	if err != nil {
		return err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	l.queue <- e
	return l.Healthy()
}

// AppendSync writes rec and returns once the batch holding it has been written and fsynced; on
// success it sets rec.Prev and rec.Hash to the chain values written. It fails at once, writing
// nothing, while the log is unavailable. When ctx ends first, AppendSync returns ctx's error:
// a record the writer had not picked up yet is then never written; one it had may still be.
// An error from AppendSync means the record is not known to be durable, so an export must be
// refused; the refusal, appended as its own record, is then the last word for that request.
func (l *Log) AppendSync(ctx context.Context, rec *Record) error {
	if err := l.Healthy(); err != nil {
		return err
	}
	e, err := l.newEntry(rec, true)
	if err != nil {
		return err
	}
	if err := l.enqueue(ctx, e); err != nil {
		return err
	}
	select {
	case r := <-e.done:
		return r.apply(rec)
	case <-ctx.Done():
		select {
		case r := <-e.done:
			return r.apply(rec)
		default:
		}
		if e.state.CompareAndSwap(statePending, stateAbandoned) {
			return fmt.Errorf("audit: append: %w", ctx.Err())
		}
		return fmt.Errorf("audit: append: %w (the record may still be written)", ctx.Err())
	}
}

func (r result) apply(rec *Record) error {
	if r.err != nil {
		return r.err
	}
	rec.Prev, rec.Hash = r.prev, r.hash
	return nil
}

func (l *Log) enqueue(ctx context.Context, e *entry) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	select {
	case l.queue <- e:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("audit: append: %w", ctx.Err())
	}
}

func (l *Log) newEntry(rec *Record, sync bool) (*entry, error) {
	r := *rec
	if r.Time.IsZero() {
		r.Time = l.now()
	}
	line, err := encodeLine(&r)
	if err != nil {
		return nil, err
	}
	e := &entry{line: line, sync: sync}
	if sync {
		e.done = make(chan result, 1)
	}
	return e, nil
}

// Healthy returns nil when the last write and fsync succeeded, an error wrapping ErrUnavailable
// while the file cannot be written, and ErrClosed after Close. The proxy checks it before
// forwarding an export.
func (l *Log) Healthy() error {
	if s := l.state.Load(); s != nil {
		return s.err
	}
	return nil
}

// Dropped is the number of records from Append dropped because the file could not be written
// and the in-memory backlog was full.
func (l *Log) Dropped() uint64 {
	return l.dropped.Load()
}

// Close writes and fsyncs the queued records, closes the file and releases the lock. It reports
// records that could not be written. Append and AppendSync return ErrClosed afterwards.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		close(l.queue)
		l.mu.Unlock()
		<-l.done
		l.state.Store(&stickyError{ErrClosed})
		if err := l.lock.Close(); err != nil {
			l.closeErr = errors.Join(l.closeErr, fmt.Errorf("audit: close lock: %w", err))
		}
	})
	return l.closeErr
}

// run is the writer goroutine.
func (l *Log) run() {
	defer close(l.done)
	l.flush()
	for {
		select {
		case e, ok := <-l.queue:
			if !ok {
				l.shutdown()
				return
			}
			l.accept(e)
			if !l.drain() {
				l.shutdown()
				return
			}
			if l.f == nil {
				continue
			}
			if l.syncWaiting || l.pendingBytes >= maxBatch {
				l.flush()
			} else if !l.flushArmed {
				l.flushT.Reset(l.flushEvery)
				l.flushArmed = true
			}
		case <-l.flushT.C:
			l.flushArmed = false
			l.flush()
		case <-l.retryT.C:
			l.recover()
		}
	}
}

// accept takes e from the queue. While the log is unavailable, AppendSync records fail at once
// and records from Append wait in the backlog, or are dropped when it is full.
func (l *Log) accept(e *entry) {
	if l.f == nil {
		if e.sync {
			e.finish(result{err: l.Healthy()})
			return
		}
		if len(l.pending) >= l.maxBacklog {
			l.dropped.Add(1)
			return
		}
	}
	l.pending = append(l.pending, e)
	l.pendingBytes += len(e.line)
	l.syncWaiting = l.syncWaiting || e.sync
}

// drain accepts what is already queued, up to a batch; false when the queue was closed.
func (l *Log) drain() bool {
	for l.pendingBytes < maxBatch {
		select {
		case e, ok := <-l.queue:
			if !ok {
				return false
			}
			l.accept(e)
		default:
			return true
		}
	}
	return true
}

// flush chains the pending records and writes them with one write and one fsync per file.
func (l *Log) flush() {
	if l.f == nil || len(l.pending) == 0 {
		return
	}
	if err := l.checkActive(); err != nil {
		l.fail(err, nil, 0)
		return
	}
	if d := l.dropped.Load(); d > l.reported {
		l.pending = withEvents([]*entry{l.droppedEvent(d)}, l.pending)
	}
	buf, seg, cur := l.buf[:0], []*entry(nil), l.head
	i := 0
	for ; i < len(l.pending); i++ {
		e := l.pending[i]
		if e.sync && !e.state.CompareAndSwap(statePending, stateTaken) {
			continue // its caller gave up before the writer took it
		}
		if l.size+int64(len(buf)+len(e.line)) > l.maxBytes && l.size+int64(len(buf)) > 0 {
			if len(buf) > 0 {
				if err := l.write(buf); err != nil {
					l.fail(err, seg, i)
					return
				}
				l.commit(seg, len(buf))
				buf, seg = buf[:0], nil
			}
			if err := l.rotate(); err != nil {
				l.fail(err, nil, i)
				return
			}
		}
		e.prev = cur
		cur = chain(l.h, e.line, cur)
		e.hash = cur
		buf = append(buf, e.line...)
		seg = append(seg, e)
	}
	if len(buf) > 0 {
		if err := l.write(buf); err != nil {
			l.fail(err, seg, i)
			return
		}
		l.commit(seg, len(buf))
	}
	clear(l.pending)
	l.pending, l.pendingBytes, l.syncWaiting = l.pending[:0], 0, false
	if cap(buf) <= 4*maxBatch {
		l.buf = buf[:0]
	} else {
		l.buf = nil
	}
}

func (l *Log) write(buf []byte) error {
	if _, err := l.f.Write(buf); err != nil {
		return fmt.Errorf("audit: write: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit: fsync %s: %w", l.path, err)
	}
	return nil
}

// commit records that seg, n bytes, is on disk and tells its AppendSync callers.
func (l *Log) commit(seg []*entry, n int) {
	l.size += int64(n)
	l.head = seg[len(seg)-1].hash
	for _, e := range seg {
		if e.sync {
			e.finish(result{prev: e.prev, hash: e.hash})
		}
		l.reported = max(l.reported, e.dropsTo)
	}
}

// checkActive notices the active file being removed or replaced under the log: writing on
// into an unlinked file would lose every line silently.
func (l *Log) checkActive() error {
	info, err := os.Stat(l.path)
	if err != nil {
		return fmt.Errorf("audit: active file: %w", err)
	}
	if !os.SameFile(info, l.info) {
		return fmt.Errorf("audit: active file %s was replaced", l.path)
	}
	return nil
}

// rotate renames the full active file to <path>.<UTC time>.<seq> and starts a new one; the
// chain continues into it.
func (l *Log) rotate() error {
	f := l.f
	l.f = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("audit: rotate: close: %w", err)
	}
	var name string
	for {
		name = rotatedName(l.path, l.now(), l.seq)
		l.seq++
		_, err := os.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("audit: rotate: %w", err)
		}
	}
	if err := os.Rename(l.path, name); err != nil {
		return fmt.Errorf("audit: rotate: %w", err)
	}
	nf, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("audit: rotate: %w", err)
	}
	info, err := nf.Stat()
	if err == nil {
		err = syncDir(filepath.Dir(l.path))
	}
	if err != nil {
		nf.Close()
		return fmt.Errorf("audit: rotate: %w", err)
	}
	l.f, l.info, l.size = nf, info, 0
	l.log.Info("audit: rotated", "file", name)
	l.prune()
	return nil
}

// prune deletes the oldest rotated files beyond MaxFiles.
func (l *Log) prune() {
	if l.maxFiles <= 0 {
		return
	}
	rot, err := listRotated(l.path)
	if err != nil {
		l.log.Warn("audit: prune", "err", err)
		return
	}
	for _, r := range rot[:max(0, len(rot)-l.maxFiles)] {
		if err := os.Remove(r.path); err != nil {
			l.log.Warn("audit: prune", "file", r.path, "err", err)
			continue
		}
		l.log.Info("audit: deleted rotated file beyond max_files", "file", r.path)
	}
}

// fail handles a failed write of seg or a failure before pending[i:] was written: the log is
// unavailable until recover reopens the file. AppendSync callers get the error now; records
// from Append wait in memory, within MaxBacklog.
func (l *Log) fail(cause error, seg []*entry, i int) {
	err := fmt.Errorf("%w: %w", ErrUnavailable, cause)
	if l.Healthy() == nil {
		l.log.Error("audit: cannot write the audit log; exports fail closed until it recovers", "err", cause)
	}
	l.state.Store(&stickyError{err})
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	rest := l.pending[i:]
	keep := make([]*entry, 0, len(seg)+len(rest))
	for _, group := range [][]*entry{seg, rest} {
		for _, e := range group {
			if e.sync {
				e.finish(result{err: err})
				continue
			}
			if !e.regen {
				keep = append(keep, e)
			}
		}
	}
	if len(keep) > l.maxBacklog {
		l.dropped.Add(uint64(len(keep) - l.maxBacklog))
		keep = keep[:l.maxBacklog]
	}
	l.uncertain = seg
	l.pending, l.pendingBytes, l.syncWaiting = keep, 0, false
	for _, e := range keep {
		l.pendingBytes += len(e.line)
	}
	l.flushArmed = false
	l.flushT.Stop()
	l.retryT.Reset(l.retryEvery)
}

// recover reopens the active file of an unavailable log, reconciles what is on disk with what
// this process wrote, and writes the backlog.
func (l *Log) recover() {
	a, err := openActive(l.path)
	if err != nil {
		if msg := err.Error(); msg != l.lastRetry {
			l.log.Warn("audit: still cannot open the audit log", "err", err)
			l.lastRetry = msg
		}
		l.retryT.Reset(l.retryEvery)
		return
	}
	l.lastRetry = ""
	var events []*entry
	if a.torn != nil {
		events = append(events, l.tornEvent(a))
	}
	if a.head != l.head {
		saved := -1
		for k, e := range l.uncertain {
			if e.hash == a.head {
				saved = k
			}
		}
		if saved >= 0 {
			for _, e := range l.uncertain[:saved+1] {
				e.saved = true
			}
			l.head = a.head
		} else {
			l.log.Error("audit: the audit log lost lines: it no longer ends with the last line written",
				"file", l.path, "want_head", l.head, "found_head", a.head)
			events = append(events, l.gapEvent(a.head))
		}
	}
	l.uncertain = nil
	kept := l.pending[:0]
	for _, e := range l.pending {
		if !e.saved {
			kept = append(kept, e)
		}
	}
	l.pending = withEvents(events, kept)
	l.pendingBytes = 0
	for _, e := range l.pending {
		l.pendingBytes += len(e.line)
	}
	l.install(a)
	backlog := len(l.pending)
	l.flush()
	if l.f == nil {
		return // failed again; fail armed the next retry
	}
	l.state.Store(nil)
	l.log.Info("audit: audit log writable again", "written", backlog)
}

func (l *Log) install(a *active) {
	l.f, l.info, l.size = a.f, a.info, a.size
	if l.head == "" {
		l.head = a.head
	}
}

// shutdown writes what is pending when the queue is closed.
func (l *Log) shutdown() {
	l.flushT.Stop()
	l.retryT.Stop()
	if l.f == nil && len(l.pending) > 0 {
		l.recover()
		l.retryT.Stop()
	}
	l.flush()
	var errs []error
	if n := len(l.pending); n > 0 {
		errs = append(errs, fmt.Errorf("audit: close: %d records not written: %w", n, l.Healthy()))
		for _, e := range l.pending {
			e.finish(result{err: ErrClosed})
		}
	}
	if d := l.dropped.Load(); d > l.reported {
		errs = append(errs, fmt.Errorf("audit: close: %d records dropped while the log was unavailable", d-l.reported))
	}
	if l.f != nil {
		if err := l.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("audit: close: %w", err))
		}
		l.f = nil
	}
	l.closeErr = errors.Join(errs...)
}

// Events the log records about itself, in Record.Extra["event"].
const (
	// EventTornLine: an unfinished last line (crash, failed write) was cut off the file.
	// Extra holds file, offset, bytes, sha256 and base64 (the first 64 KiB; base64_cut=true
	// when there was more).
	EventTornLine = "audit.torn_line"
	// EventGap: the file no longer ended with the last line this process wrote (removed,
	// replaced or truncated under it). The chain continues from the last line written, so
	// Verify reports the break at this line. Extra holds file, want_prev and found_head.
	EventGap = "audit.gap"
	// EventDropped: records were dropped while the file could not be written. Extra holds
	// dropped.
	EventDropped = "audit.dropped"
)

const maxTornKept = 64 << 10

func (l *Log) tornEvent(a *active) *entry {
	t := a.torn
	sum := sha256.Sum256(t.torn)
	kept := t.torn[:min(len(t.torn), maxTornKept)]
	extra := map[string]string{
		"file":   l.path,
		"offset": strconv.FormatInt(t.end, 10),
		"bytes":  strconv.FormatInt(t.tornLen, 10),
		"sha256": hex.EncodeToString(sum[:]),
		"base64": base64.StdEncoding.EncodeToString(kept),
	}
	if len(kept) < len(t.torn) {
		extra["base64_cut"] = "true"
	}
	l.log.Warn("audit: cut an unfinished last line (crash or failed write); recorded in the chain",
		"file", l.path, "offset", t.end, "bytes", t.tornLen)
	return l.event(EventTornLine, "unfinished last line cut off the audit file; its bytes are in extra", extra)
}

func (l *Log) gapEvent(found string) *entry {
	e := l.event(EventGap, "the audit file no longer ended with the last line written; lines were lost",
		map[string]string{"file": l.path, "want_prev": l.head, "found_head": found})
	if e != nil {
		e.regen = true
	}
	return e
}

// droppedEvent accounts for the records dropped since the last EventDropped, up to the
// Dropped count upTo.
func (l *Log) droppedEvent(upTo uint64) *entry {
	e := l.event(EventDropped, "records dropped while the audit file could not be written",
		map[string]string{"dropped": strconv.FormatUint(upTo-l.reported, 10)})
	if e != nil {
		e.regen, e.dropsTo = true, upTo
	}
	return e
}

func (l *Log) event(name, reason string, extra map[string]string) *entry {
	extra["event"] = name
	rec := Record{
		Time:     l.now(),
		System:   "veil",
		Resource: "audit",
		Action:   "other",
		Decision: DecisionError,
		Reason:   reason,
		Extra:    extra,
	}
	line, err := encodeLine(&rec)
	if err != nil {
		l.log.Error("audit: encode event", "event", name, "err", err)
		return nil
	}
	return &entry{line: line}
}

// withEvents puts the event entries that could be encoded before pending.
func withEvents(events, pending []*entry) []*entry {
	out := make([]*entry, 0, len(events)+len(pending))
	for _, e := range events {
		if e != nil {
			out = append(out, e)
		}
	}
	return append(out, pending...)
}
