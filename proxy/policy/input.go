package policy

import (
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// inputValue builds the policy input as an AST value directly, the document
// encoding/json would make of in (same keys, nulls for nil slices and maps, the time in
// RFC 3339), without a JSON round trip.
func inputValue(in Input) (ast.Value, error) {
	claims, err := claimsValue(in.User.Claims)
	if err != nil {
		return nil, err
	}
	user := ast.NewObjectWithCapacity(6)
	user.Insert(key("id"), ast.StringTerm(in.User.ID))
	user.Insert(key("roles"), stringsTerm(in.User.Roles))
	user.Insert(key("department"), ast.StringTerm(in.User.Department))
	if in.User.Email != "" {
		user.Insert(key("email"), ast.StringTerm(in.User.Email))
	}
	user.Insert(key("claims"), ast.NewTerm(claims))
	user.Insert(key("restricted"), ast.InternedTerm(in.User.Restricted))

	request := ast.NewObjectWithCapacity(6)
	request.Insert(key("method"), ast.StringTerm(in.Request.Method))
	request.Insert(key("path"), ast.StringTerm(in.Request.Path))
	request.Insert(key("query"), multiMapTerm(in.Request.Query))
	request.Insert(key("headers"), multiMapTerm(in.Request.Headers))
	request.Insert(key("client_ip"), ast.StringTerm(in.Request.ClientIP))
	request.Insert(key("time"), ast.StringTerm(in.Request.Time.Format(time.RFC3339Nano)))

	resource := ast.NewObjectWithCapacity(7)
	resource.Insert(key("system"), ast.StringTerm(in.Resource.System))
	resource.Insert(key("type"), ast.StringTerm(in.Resource.Type))
	resource.Insert(key("action"), ast.StringTerm(in.Resource.Action))
	if in.Resource.ID == nil {
		resource.Insert(key("id"), ast.NullTerm())
	} else {
		resource.Insert(key("id"), ast.StringTerm(*in.Resource.ID))
	}
	resource.Insert(key("page_size"), ast.InternedTerm(in.Resource.PageSize))
	resource.Insert(key("fields"), stringsTerm(in.Resource.Fields))
	resource.Insert(key("export"), ast.InternedTerm(in.Resource.Export))

	doc := ast.NewObjectWithCapacity(4)
	doc.Insert(key("user"), ast.NewTerm(user))
	doc.Insert(key("request"), ast.NewTerm(request))
	doc.Insert(key("route"), ast.StringTerm(in.Route))
	doc.Insert(key("resource"), ast.NewTerm(resource))
	return doc, nil
}

// key is an object key term, interned when OPA interns the string.
func key(s string) *ast.Term {
	return ast.InternedTerm(s)
}

// stringsTerm is an array of strings; nil is null, as encoding/json writes it.
func stringsTerm(ss []string) *ast.Term {
	if ss == nil {
		return ast.NullTerm()
	}
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(terms...)
}

// multiMapTerm is an object of string arrays (query parameters, headers); nil is null.
func multiMapTerm(m map[string][]string) *ast.Term {
	if m == nil {
		return ast.NullTerm()
	}
	obj := ast.NewObjectWithCapacity(len(m))
	for k, vs := range m {
		obj.Insert(ast.StringTerm(k), stringsTerm(vs))
	}
	return ast.NewTerm(obj)
}

// claimsValue converts identity claims (JSON-decoded values) to an AST value; nil is null.
func claimsValue(claims map[string]any) (ast.Value, error) {
	if claims == nil {
		return ast.Null{}, nil
	}
	v, err := ast.InterfaceToValue(claims)
	if err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	return v, nil
}
