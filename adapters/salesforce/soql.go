package salesforce

import (
	"errors"
	"strconv"
	"strings"
)

// query is what the adapter reads from a SOQL statement.
type query struct {
	Object string   // the FROM object (or, in a subquery, the child relationship)
	Fields []string // the fields the select list reads; subquery fields as "Relationship.Field"
	Limit  int      // the LIMIT clause; 0 when there is none
	// Aliases name the result keys of functions by the field they read: an aggregate
	// "MAX(Phone) p" comes back as "p", an unaliased one as "expr0", "expr1", …
	Aliases map[string]string
}

// token is one lexical token of SOQL.
type token struct {
	text string
	kind byte // 'i' identifier or keyword, 'n' number, 's' string literal, 'p' punctuation
}

var errSOQL = errors.New("the SOQL query could not be read")

// lexSOQL splits a statement into tokens. String literals keep their quotes; a literal that
// does not end is an error.
func lexSOQL(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'':
			j := i + 1
			for ; j < len(s) && s[j] != '\''; j++ {
				if s[j] == '\\' {
					j++
				}
			}
			if j >= len(s) {
				return nil, errSOQL
			}
			toks = append(toks, token{s[i : j+1], 's'})
			i = j + 1
		case isIdent(c):
			j := i
			for j < len(s) && (isIdent(s[j]) || s[j] == '.' || (s[j] >= '0' && s[j] <= '9')) {
				j++
			}
			toks = append(toks, token{s[i:j], 'i'})
			i = j
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == '-' || s[j] == ':' || s[j] == 'T' || s[j] == 'Z' || s[j] == '+') {
				j++
			}
			toks = append(toks, token{s[i:j], 'n'})
			i = j
		default:
			toks = append(toks, token{s[i : i+1], 'p'})
			i++
		}
	}
	return toks, nil
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func (t token) is(word string) bool { return t.kind == 'i' && strings.EqualFold(t.text, word) }

// aggregates are the SOQL functions whose unaliased results come back as exprN.
var aggregates = map[string]bool{
	"avg": true, "count": true, "count_distinct": true, "min": true, "max": true, "sum": true,
	"calendar_month": true, "calendar_quarter": true, "calendar_year": true, "day_in_month": true,
	"day_in_week": true, "day_in_year": true, "day_only": true, "fiscal_month": true,
	"fiscal_quarter": true, "fiscal_year": true, "hour_in_day": true, "week_in_month": true,
	"week_in_year": true, "grouping": true,
}

// parseSOQL reads the select list, the FROM object and the LIMIT of a statement.
func parseSOQL(s string) (query, error) {
	toks, err := lexSOQL(s)
	if err != nil {
		return query{}, err
	}
	q, rest, err := parseSelect(toks, 0)
	if err != nil {
		return query{}, err
	}
	if len(rest) > 0 {
		return query{}, errSOQL
	}
	return q, nil
}

// parseSelect parses "SELECT … FROM Object …" up to the end of toks or the ")" that closes
// a subquery, and returns the tokens after it.
func parseSelect(toks []token, depth int) (query, []token, error) {
	var q query
	if depth > 2 || len(toks) == 0 || !toks[0].is("select") {
		return q, nil, errSOQL
	}
	toks = toks[1:]
	exprs := 0
	for {
		if len(toks) == 0 {
			return q, nil, errSOQL
		}
		var err error
		switch {
		case toks[0].text == "(":
			var sub query
			sub, toks, err = parseSelect(toks[1:], depth+1)
			if err != nil {
				return q, nil, err
			}
			for _, f := range sub.Fields {
				q.Fields = append(q.Fields, sub.Object+"."+f)
			}
		case toks[0].is("typeof"):
			if len(toks) < 2 || toks[1].kind != 'i' {
				return q, nil, errSOQL
			}
			q.Fields = append(q.Fields, toks[1].text)
			for len(toks) > 0 && !toks[0].is("end") {
				toks = toks[1:]
			}
			if len(toks) == 0 {
				return q, nil, errSOQL
			}
			toks = toks[1:]
		case toks[0].kind == 'i' && len(toks) > 1 && toks[1].text == "(":
			fn := strings.ToLower(toks[0].text)
			var args []string
			toks, args, err = callArgs(toks[2:])
			if err != nil {
				return q, nil, err
			}
			field := ""
			if len(args) > 0 && fn != "fields" {
				field = args[len(args)-1]
			}
			key := ""
			if len(toks) > 0 && toks[0].kind == 'i' && !toks[0].is("from") {
				key, toks = toks[0].text, toks[1:] // an alias
			} else if aggregates[fn] {
				key = "expr" + strconv.Itoa(exprs)
				exprs++
			}
			if field != "" {
				q.Fields = append(q.Fields, field)
				if key != "" {
					if q.Aliases == nil {
						q.Aliases = make(map[string]string)
					}
					q.Aliases[key] = lastSegment(field)
				}
			}
		case toks[0].kind == 'i':
			q.Fields = append(q.Fields, toks[0].text)
			toks = toks[1:]
			if len(toks) > 0 && toks[0].kind == 'i' && !toks[0].is("from") {
				toks = toks[1:] // an alias of a grouped field
			}
		default:
			return q, nil, errSOQL
		}
		if len(toks) == 0 {
			return q, nil, errSOQL
		}
		if toks[0].text == "," {
			toks = toks[1:]
			continue
		}
		if toks[0].is("from") {
			break
		}
		return q, nil, errSOQL
	}
	toks = toks[1:]
	if len(toks) == 0 || toks[0].kind != 'i' {
		return q, nil, errSOQL
	}
	q.Object, toks = toks[0].text, toks[1:]
	// The rest of the clause: find LIMIT at this level, stop at the ")" closing a subquery.
	level := 0
	for len(toks) > 0 {
		t := toks[0]
		switch {
		case t.text == "(":
			level++
		case t.text == ")":
			if level == 0 {
				if depth == 0 {
					return q, nil, errSOQL
				}
				return q, toks[1:], nil
			}
			level--
		case level == 0 && t.is("limit"):
			if len(toks) < 2 || toks[1].kind != 'n' {
				return q, nil, errSOQL
			}
			n, err := strconv.Atoi(toks[1].text)
			if err != nil || n < 0 {
				return q, nil, errSOQL
			}
			q.Limit = n
			toks = toks[1:]
		}
		toks = toks[1:]
	}
	if depth > 0 || level != 0 {
		return q, nil, errSOQL
	}
	return q, nil, nil
}

// callArgs reads a function's arguments up to its closing parenthesis and returns the
// identifiers among them (field paths) and the tokens after it.
func callArgs(toks []token) ([]token, []string, error) {
	var args []string
	level := 0
	for i, t := range toks {
		switch {
		case t.text == "(":
			level++
		case t.text == ")":
			if level == 0 {
				return toks[i+1:], args, nil
			}
			level--
		case t.kind == 'i':
			args = append(args, t.text)
		}
	}
	return nil, nil, errSOQL
}

func lastSegment(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[i+1:]
	}
	return path
}
