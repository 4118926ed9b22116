package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
)

// noMetrics spares Decide the per-evaluation metrics registry OPA would allocate; Veil
// times evaluations itself.
var noMetrics = metrics.NoOp()

// Options configure an Engine.
type Options struct {
	// FS is the policy tree: os.DirFS(dir) or the embedded policies.FS. Every .rego file is
	// compiled and every data.json/data.yaml is stored at its folder's path
	// (veil/data.json is data.veil), the way OPA reads a bundle. Names starting with "."
	// are skipped. Required.
	FS fs.FS
	// Dir is the directory behind FS when it is on disk; Watch watches it. "" (an embedded
	// tree) makes Watch fail.
	Dir string
	// Logger receives reload outcomes; nil discards them. Input values are never logged.
	Logger *slog.Logger
	// OnReload, when set, is called after every load attempt (New, Reload) with the new
	// revision and a nil error, or with "" and the error that refused the tree.
	OnReload func(revision string, err error)
	// CacheTTL is how long a decision is reused for requests that agree on every part of the
	// input the policy reads (see cache.go); 0 = 2s, negative = no cache. A reload starts an
	// empty cache.
	CacheTTL time.Duration
	// CacheSize bounds the cached decisions; 0 = 10000.
	CacheSize int
	// Now is the cache's clock; nil = time.Now.
	Now func() time.Time
}

// Engine evaluates data.veil.decision on one prepared query, swapped atomically when the
// policy is reloaded. An Engine always holds a policy that compiled: New fails otherwise.
// Its methods are safe for concurrent use.
type Engine struct {
	fsys      fs.FS
	dir       string
	log       *slog.Logger
	onReload  func(string, error)
	cacheTTL  time.Duration
	cacheSize int
	now       func() time.Time

	mu      sync.Mutex // serializes loads
	current atomic.Pointer[compiled]
}

// New loads the policy tree once. It fails when the tree cannot be read, does not compile,
// defines no data.veil.decision rule, or cannot decide a probe request (an anonymous user
// without roles on a path that matched no resource) without an error.
func New(ctx context.Context, o Options) (*Engine, error) {
	if o.FS == nil {
		return nil, errors.New("policy: no policy tree")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{fsys: o.FS, dir: o.Dir, log: log, onReload: o.OnReload, cacheTTL: o.CacheTTL, cacheSize: o.CacheSize, now: o.Now}
	switch {
	case e.cacheTTL == 0:
		e.cacheTTL = 2 * time.Second
	case e.cacheTTL < 0:
		e.cacheTTL = 0
	}
	if e.cacheSize <= 0 {
		e.cacheSize = 10000
	}
	if e.now == nil {
		e.now = time.Now
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rev, err := e.load(ctx)
	e.report(rev, err)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Decide evaluates data.veil.decision for in. Any error — an undefined decision
// (ErrUndefined), an evaluation error, a decision of the wrong shape (ErrInvalid) — means
// the request must be denied. Decisions may come from the decision cache (see cache.go) and
// share their maps and slices with other callers: treat them as read-only.
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	c := e.current.Load()
	var key uint64
	cacheable := false
	if c.cache != nil {
		if key, cacheable = c.cache.key(&in); cacheable {
			if d, ok := c.cache.get(key); ok {
				return d, nil
			}
		}
	}
	input, err := inputValue(in)
	if err != nil {
		return Decision{}, fmt.Errorf("policy: input: %w", err)
	}
	rs, err := c.query.Eval(ctx, rego.EvalParsedInput(input), rego.EvalMetrics(noMetrics))
	if err != nil {
		return Decision{}, fmt.Errorf("policy: evaluate: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, ErrUndefined
	}
	if len(rs) > 1 {
		return Decision{}, fmt.Errorf("%w: %d results, want one", ErrInvalid, len(rs))
	}
	v, ok := rs[0].Expressions[0].Value.(ast.Value)
	if !ok {
		return Decision{}, fmt.Errorf("%w: result is %T, want an AST value", ErrInvalid, rs[0].Expressions[0].Value)
	}
	d, err := parseDecision(v)
	if err != nil {
		return Decision{}, err
	}
	d.Revision = c.revision
	if cacheable {
		c.cache.put(key, d)
	}
	return d, nil
}

// Revision is the revision of the policy in use: the first 12 hex digits of the SHA-256
// over the policy files' paths and contents.
func (e *Engine) Revision() string {
	return e.current.Load().revision
}

// Reload reads the tree again and switches to it if New would accept it. A tree New would
// refuse is refused — logged, reported to OnReload and returned — and the last good policy
// keeps serving. An unchanged tree is not recompiled.
func (e *Engine) Reload(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.current.Load().revision
	rev, err := e.load(ctx)
	e.report(rev, err)
	switch {
	case err != nil:
		e.log.LogAttrs(ctx, slog.LevelError, "policy reload refused",
			slog.String("serving", old), slog.Any("error", err))
	case rev != old:
		e.log.LogAttrs(ctx, slog.LevelInfo, "policy reloaded",
			slog.String("revision", rev), slog.String("previous", old))
	}
	return err
}

// load reads and compiles the tree and makes it current; it returns the new revision.
// The caller holds e.mu.
func (e *Engine) load(ctx context.Context) (string, error) {
	files, err := readTree(e.fsys)
	if err != nil {
		return "", fmt.Errorf("policy: load: %w", err)
	}
	rev := revisionOf(files)
	if cur := e.current.Load(); cur != nil && cur.revision == rev {
		return rev, nil
	}
	c, err := build(ctx, files)
	if err != nil {
		return "", fmt.Errorf("policy: load revision %s: %w", rev, err)
	}
	c.cache = newDecisionCache(c.parts, e.cacheTTL, e.cacheSize, e.now)
	e.current.Store(c)
	return rev, nil
}

// report hands a load outcome to OnReload.
func (e *Engine) report(rev string, err error) {
	if e.onReload != nil {
		e.onReload(rev, err)
	}
}
