package policy

import (
	"context"
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/util"
)

// tablesRef is the root of the lookup tables: rules under data.veil.tables that depend on
// data only are evaluated once per load and served as data, so a request looks a plan up
// instead of recomputing it from the classification.
var tablesRef = ast.MustParseRef("data.veil.tables")

// withTables evaluates data.veil.tables with c (the policy without its tests) and returns
// data with the result stored at veil.tables. It refuses tables that read input or call a
// non-deterministic built-in (their value would be frozen at load time), that are not
// plain JSON (a set, a non-string key: the store could not look them up), or whose path
// the data documents already use.
func withTables(ctx context.Context, c *ast.Compiler, data ast.Object) (ast.Object, error) {
	if err := checkTables(c); err != nil {
		return nil, err
	}
	rs, err := rego.New(
		rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(tablesRef)))),
		rego.Compiler(c),
		rego.Store(inmem.NewFromASTObject(data.Copy())),
		rego.StrictBuiltinErrors(true),
		rego.GenerateJSON(resultTerm),
	).Eval(ctx)
	if err != nil {
		return nil, fmt.Errorf("evaluate data.veil.tables: %w", err)
	}
	tables := ast.Value(ast.NewObject())
	if len(rs) == 1 && len(rs[0].Expressions) == 1 {
		v, ok := rs[0].Expressions[0].Value.(ast.Value)
		if !ok {
			return nil, fmt.Errorf("evaluate data.veil.tables: result is %T, want an AST value", rs[0].Expressions[0].Value)
		}
		tables = v
	}
	if err := plainJSON(tables, tablesRef.String()); err != nil {
		return nil, err
	}
	veil := ast.NewObject()
	if t := data.Get(ast.InternedTerm("veil")); t != nil {
		obj, ok := t.Value.(ast.Object)
		if !ok {
			return nil, fmt.Errorf("data.veil is %s, want an object", ast.ValueName(t.Value))
		}
		if obj.Get(ast.InternedTerm("tables")) != nil {
			return nil, errors.New("data.veil.tables is defined by both data and rules")
		}
		veil = obj.Copy()
	}
	veil.Insert(ast.InternedTerm("tables"), ast.NewTerm(tables))
	out := data.Copy()
	out.Insert(ast.InternedTerm("veil"), ast.NewTerm(veil))
	return out, nil
}

// checkTables walks every rule under data.veil.tables and every rule or function those
// depend on, and refuses any that reads input or calls a non-deterministic built-in.
func checkTables(c *ast.Compiler) error {
	var queue []util.T
	for _, m := range c.Modules {
		if m.Package.Path.HasPrefix(tablesRef) {
			for _, r := range m.Rules {
				queue = append(queue, r)
			}
		}
	}
	seen := make(map[util.T]bool, len(queue))
	for len(queue) > 0 {
		node := queue[0]
		queue = queue[1:]
		if seen[node] {
			continue
		}
		seen[node] = true
		rule := node.(*ast.Rule)
		if err := tableSafe(rule); err != nil {
			return fmt.Errorf("%s: data.veil.tables depends on rule %s, which %w",
				rule.Location, rule.Head.Ref(), err)
		}
		for dep := range c.Graph.Dependencies(node) {
			queue = append(queue, dep)
		}
	}
	return nil
}

// tableSafe returns an error when rule reads input or calls a non-deterministic built-in.
func tableSafe(rule *ast.Rule) error {
	var err error
	ast.WalkRefs(rule, func(r ast.Ref) bool {
		if err == nil && r.HasPrefix(ast.InputRootRef) {
			err = errors.New("reads input")
		}
		return err != nil
	})
	ast.WalkExprs(rule, func(e *ast.Expr) bool {
		if err == nil && e.IsCall() {
			if b, ok := ast.BuiltinMap[e.Operator().String()]; ok && b.Nondeterministic {
				err = fmt.Errorf("calls the non-deterministic built-in %s", b.Name)
			}
		}
		return err != nil
	})
	return err
}

// plainJSON returns an error naming the first place in v that JSON cannot express.
func plainJSON(v ast.Value, at string) error {
	switch x := v.(type) {
	case ast.Object:
		return x.Iter(func(k, val *ast.Term) error {
			s, ok := k.Value.(ast.String)
			if !ok {
				return fmt.Errorf("%s has the non-string key %v: tables must be plain JSON", at, k)
			}
			return plainJSON(val.Value, at+"["+ast.StringTerm(string(s)).String()+"]")
		})
	case *ast.Array:
		return x.Iter(func(t *ast.Term) error { return plainJSON(t.Value, at+"[_]") })
	case ast.Set:
		return fmt.Errorf("%s is a set: tables must be plain JSON (use an object or an array)", at)
	}
	return nil
}
