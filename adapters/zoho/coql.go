package zoho

import (
	"errors"
	"slices"
	"strconv"
	"strings"
)

// coql is what the adapter reads from a COQL select_query.
type coql struct {
	Module string
	Fields []string
	Limit  int // the LIMIT count; 200 (COQL's default) when there is none
	// Aliases name the result keys of functions and aliased fields by the field they read:
	// "MAX(Mobile)" or "m" in "MAX(Mobile) as m" comes back under that key.
	Aliases map[string]string
}

var errCOQL = errors.New("the COQL query could not be read")

// parseCOQL reads "select a, b.c, MAX(d) as m from Module where … order by … limit o, n".
func parseCOQL(s string) (coql, error) {
	toks, err := lexCOQL(s)
	if err != nil {
		return coql{}, err
	}
	q := coql{Limit: defaultPerPage}
	if len(toks) == 0 || !strings.EqualFold(toks[0], "select") {
		return q, errCOQL
	}
	toks = toks[1:]
	for {
		if len(toks) == 0 {
			return q, errCOQL
		}
		key, field := toks[0], toks[0]
		toks = toks[1:]
		if len(toks) > 0 && toks[0] == "(" { // a function: its argument is the field
			end := slices.Index(toks, ")")
			if end < 2 {
				return q, errCOQL
			}
			field = toks[end-1]
			key += "(" + strings.Join(toks[1:end], "") + ")"
			toks = toks[end+1:]
		}
		if !isName(field) {
			return q, errCOQL
		}
		if len(toks) > 1 && strings.EqualFold(toks[0], "as") {
			key, toks = toks[1], toks[2:]
		}
		q.Fields = append(q.Fields, field)
		if key != field {
			if q.Aliases == nil {
				q.Aliases = make(map[string]string)
			}
			q.Aliases[key] = field[strings.LastIndexByte(field, '.')+1:]
		}
		if len(toks) == 0 {
			return q, errCOQL
		}
		if toks[0] == "," {
			toks = toks[1:]
			continue
		}
		if strings.EqualFold(toks[0], "from") {
			break
		}
		return q, errCOQL
	}
	if len(toks) < 2 || !isName(toks[1]) {
		return q, errCOQL
	}
	q.Module, toks = toks[1], toks[2:]
	for i := 0; i < len(toks); i++ {
		if !strings.EqualFold(toks[i], "limit") {
			continue
		}
		// limit n | limit offset, n | limit n offset m
		rest := toks[i+1:]
		if len(rest) == 0 {
			return q, errCOQL
		}
		n := rest[0]
		if len(rest) >= 3 && rest[1] == "," {
			n = rest[2]
		}
		v, err := strconv.Atoi(n)
		if err != nil || v < 0 {
			return q, errCOQL
		}
		q.Limit = v
	}
	return q, nil
}

// lexCOQL splits a query into words, quoted strings and punctuation.
func lexCOQL(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'' || c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' {
					j++
				}
			}
			if j >= len(s) {
				return nil, errCOQL
			}
			toks = append(toks, s[i:j+1])
			i = j + 1
		case isWord(c):
			j := i
			for j < len(s) && isWord(s[j]) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			toks = append(toks, s[i:i+1])
			i++
		}
	}
	return toks, nil
}

func isWord(c byte) bool {
	return c == '_' || c == '.' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isName(s string) bool {
	return s != "" && isWord(s[0]) && !(s[0] >= '0' && s[0] <= '9')
}
