package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader/filter"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// decisionRef is the document every request evaluates.
var decisionRef = ast.MustParseRef("data.veil.decision")

// file is one policy file read from the tree: its slash-separated path relative to the
// root of the tree, and its contents.
type file struct {
	path string
	data []byte
}

// policyFile reports whether the loader reads name: Rego modules and data documents, the
// files an OPA bundle is made of.
func policyFile(name string) bool {
	return strings.HasSuffix(name, ".rego") || name == "data.json" || name == "data.yaml" || name == "data.yml"
}

// readTree reads every policy file of fsys, in lexical path order. Files and directories
// whose names start with "." (editor swap and lock files, .git) are skipped.
func readTree(fsys fs.FS) ([]file, error) {
	var files []file
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		readable := d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0
		if d.IsDir() || !readable || !policyFile(d.Name()) {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files = append(files, file{path: p, data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read tree: %w", err)
	}
	return files, nil
}

// revisionOf is the hex SHA-256 over the files' paths and contents, in path order,
// cut to 12 characters. Lengths are hashed in so no two trees share a stream.
func revisionOf(files []file) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%d:%s\n%d:", len(f.path), f.path, len(f.data))
		h.Write(f.data)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// compiled is one successfully loaded policy: the prepared data.veil.decision query and
// the revision of the tree it was built from.
type compiled struct {
	query    rego.PreparedEvalQuery
	revision string
	parts    inputPart  // the parts of the input the serving rules read
	data     ast.Object // the data document the query reads, tables included (see Data)
	cache    *decisionCache
}

// parse reads files the way OPA reads a bundle: every .rego file is parsed as a Rego v1
// module, every data.json/data.yaml is placed at its folder's path in the data document.
func parse(files []file) (map[string]*ast.Module, ast.Object, error) {
	b, err := bundle.NewCustomReader(&memLoader{files: files}).
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotations(true).
		WithSkipBundleVerification(true).
		Read()
	if err != nil {
		return nil, nil, err
	}
	modules := make(map[string]*ast.Module, len(b.Modules))
	for _, m := range b.Modules {
		modules[m.Path] = m.Parsed
	}
	data := ast.NewObject()
	if b.Data != nil {
		v, err := ast.InterfaceToValue(b.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("data: %w", err)
		}
		obj, ok := v.(ast.Object)
		if !ok {
			return nil, nil, fmt.Errorf("data: %s, want an object", ast.ValueName(v))
		}
		data = obj
	}
	return modules, data, nil
}

// compile compiles modules, failing on any error.
func compile(modules map[string]*ast.Module) (*ast.Compiler, error) {
	c := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
	if c.Compile(modules); c.Failed() {
		return nil, c.Errors
	}
	return c, nil
}

// build compiles the tree and prepares the decision query. Every module is compiled,
// tests included, so a tree any file of which is broken is refused. Rules under
// data.veil.tables are then evaluated once (see withTables), and the decision is served
// by a compiler that holds neither them nor the tests.
func build(ctx context.Context, files []file) (*compiled, error) {
	modules, data, err := parse(files)
	if err != nil {
		return nil, err
	}
	full, err := compile(modules)
	if err != nil {
		return nil, err
	}
	if len(full.GetRules(decisionRef)) == 0 {
		return nil, errors.New("no rule defines data.veil.decision")
	}
	withoutTests := make(map[string]*ast.Module, len(modules))
	serving := make(map[string]*ast.Module, len(modules))
	for name, m := range modules {
		if strings.HasSuffix(name, "_test.rego") {
			continue
		}
		withoutTests[name] = m
		if !m.Package.Path.HasPrefix(tablesRef) {
			serving[name] = m
		}
	}
	if len(serving) < len(withoutTests) {
		c, err := compile(withoutTests)
		if err != nil {
			return nil, fmt.Errorf("compile without tests: %w", err)
		}
		if data, err = withTables(ctx, c, data); err != nil {
			return nil, err
		}
	}
	if len(serving) < len(modules) {
		if full, err = compile(serving); err != nil {
			return nil, fmt.Errorf("compile without tables and tests: %w", err)
		}
	}
	query, err := rego.New(
		rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(decisionRef)))),
		rego.Compiler(full),
		rego.Store(inmem.NewFromASTObject(data)),
		rego.StrictBuiltinErrors(true),
		rego.GenerateJSON(resultTerm),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if err := probe(ctx, query); err != nil {
		return nil, err
	}
	return &compiled{query: query, revision: revisionOf(files), parts: inputParts(serving), data: data}, nil
}

// probeInput is a request that matched no resource, from a user without roles: every
// policy must be able to answer it, if only with a deny.
var probeInput = Input{
	User:     User{Roles: []string{}, Claims: map[string]any{}},
	Request:  Request{Method: "GET", Path: "/", Query: map[string][]string{}, Headers: map[string][]string{}},
	Resource: Resource{Fields: []string{}},
}

// probe evaluates the decision once for probeInput, so that a policy that cannot decide
// at all — conflicting values for data.veil.decision, a built-in error on every request,
// a decision that is never a decision — is refused at load instead of denying every
// request. An undefined decision passes: it is a deny.
func probe(ctx context.Context, query rego.PreparedEvalQuery) error {
	input, err := inputValue(probeInput)
	if err != nil {
		return err
	}
	rs, err := query.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return fmt.Errorf("probe evaluation: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil
	}
	if v, ok := rs[0].Expressions[0].Value.(ast.Value); ok {
		if _, err := parseDecision(v); err != nil {
			return fmt.Errorf("probe evaluation: %w", err)
		}
	}
	return nil
}

// resultTerm hands results back as AST values: Decide reads the decision without a
// round trip through map[string]any.
func resultTerm(t *ast.Term, _ *rego.EvalContext) (any, error) {
	return t.Value, nil
}

// memLoader feeds files already read to OPA's bundle reader, so the compiled policy is
// exactly the snapshot the revision was computed from.
type memLoader struct {
	files []file
	next  int
}

// NextFile implements bundle.DirectoryLoader.
func (l *memLoader) NextFile() (*bundle.Descriptor, error) {
	if l.next >= len(l.files) {
		return nil, io.EOF
	}
	f := l.files[l.next]
	l.next++
	p := path.Join("/", f.path)
	return bundle.NewDescriptor(p, p, bytes.NewReader(f.data)), nil
}

// WithFilter implements bundle.DirectoryLoader; readTree has already chosen the files.
func (l *memLoader) WithFilter(filter.LoaderFilter) bundle.DirectoryLoader { return l }

// WithPathFormat implements bundle.DirectoryLoader; paths are always slash-rooted.
func (l *memLoader) WithPathFormat(bundle.PathFormat) bundle.DirectoryLoader { return l }

// WithSizeLimitBytes implements bundle.DirectoryLoader; the files are in memory already.
func (l *memLoader) WithSizeLimitBytes(int64) bundle.DirectoryLoader { return l }

// WithFollowSymlinks implements bundle.DirectoryLoader; readTree follows fs.FS semantics.
func (l *memLoader) WithFollowSymlinks(bool) bundle.DirectoryLoader { return l }
