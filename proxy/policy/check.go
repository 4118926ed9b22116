package policy

import (
	"context"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// testTimeout bounds each Rego test. OPA's default of 5s is short for a loaded CI machine, and
// under the race detector one matrix test of the shipped policy takes over a minute.
const testTimeout = 10 * time.Minute

// runTests runs the tests of modules whose full names match filter ("": every test);
// with a filter they are traced, for the report of failures.
func runTests(ctx context.Context, modules map[string]*ast.Module, data ast.Object, filter string) ([]*tester.Result, error) {
	ch, err := tester.NewRunner().
		SetDefaultRegoVersion(ast.RegoV1).
		SetStore(inmem.NewFromASTObject(data.Copy())).
		SetModules(modules).
		SetTimeout(testTimeout).
		CapturePrintOutput(true).
		RaiseBuiltinErrors(true).
		EnableTracing(filter != "").
		Filter(filter).
		RunTests(ctx, nil)
	if err != nil {
		return nil, err
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return results, nil
}

// tally counts a test's outcomes as the report does: every case of a parameterized test
// (a test_name[case] rule) is one test. A test that ends in an error fails.
func tally(r *tester.Result) (passed, failed int) {
	switch {
	case r.Skip:
		return 0, 0
	case r.Error != nil:
		return 0, 1
	}
	for _, sr := range r.SubResults.Iter {
		if len(sr.SubResults) > 0 {
			continue
		}
		if sr.Fail {
			failed++
		} else {
			passed++
		}
	}
	if passed+failed == 0 || r.Fail && failed == 0 {
		if r.Fail {
			return passed, failed + 1
		}
		return passed + 1, failed
	}
	return passed, failed
}

// Test compiles the policy tree fsys the way New does and runs its Rego tests (the test_
// rules of every module, usually in *_test.rego files), for `veil check` and `go test`.
// Tests see the tree as written: rules under data.veil.tables are evaluated by each test,
// so `with data.veil... as` reaches them. It returns the number of tests that passed and
// failed (a test that ends in an error fails) and a report in the format of `opa test`.
// err is set when the tree cannot be loaded, does not compile, defines no
// data.veil.decision or could not be tested; passed and failed are then 0.
func Test(ctx context.Context, fsys fs.FS) (passed, failed int, report string, err error) {
	files, err := readTree(fsys)
	if err != nil {
		return 0, 0, "", fmt.Errorf("policy: test: %w", err)
	}
	// Building the serving policy first reports exactly what New would refuse.
	if _, err := build(ctx, files); err != nil {
		return 0, 0, "", fmt.Errorf("policy: test: load revision %s: %w", revisionOf(files), err)
	}
	modules, data, err := parse(files)
	if err != nil {
		return 0, 0, "", fmt.Errorf("policy: test: %w", err)
	}
	results, err := runTests(ctx, modules, data, "")
	if err != nil {
		return 0, 0, "", fmt.Errorf("policy: test: %w", err)
	}
	var failing []string
	for _, r := range results {
		p, f := tally(r)
		passed += p
		failed += f
		if f > 0 {
			failing = append(failing, regexp.QuoteMeta(r.Package+"."+r.Name))
		}
	}
	if len(failing) > 0 {
		// Run the failing tests again with tracing, so the report shows where they failed.
		traced, err := runTests(ctx, modules, data, "^("+strings.Join(failing, "|")+")$")
		if err != nil {
			return 0, 0, "", fmt.Errorf("policy: test: %w", err)
		}
		byName := make(map[string]*tester.Result, len(traced))
		for _, r := range traced {
			byName[r.Package+"."+r.Name] = r
		}
		for i, r := range results {
			if t, ok := byName[r.Package+"."+r.Name]; ok {
				results[i] = t
			}
		}
	}
	var out strings.Builder
	replay := make(chan *tester.Result, len(results))
	for _, r := range results {
		replay <- r
	}
	close(replay)
	if err := (tester.PrettyReporter{Output: &out, FailureLine: true, LocalVars: true}).Report(replay); err != nil {
		return 0, 0, "", fmt.Errorf("policy: test: report: %w", err)
	}
	return passed, failed, out.String(), nil
}
