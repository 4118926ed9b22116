package proxy

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// errBadPath is a request path Veil refuses to interpret (400).
var errBadPath = errors.New("path")

// NormalizePath turns the escaped path of a request-target into the one path routing, policy,
// limits and the upstream all see: percent-decoded, dot segments removed (RFC 3986 5.2.4),
// duplicate slashes merged. Paths whose meaning differs between parsers are refused rather
// than guessed: encoded "/", "\", "#", "?", ";" and "%", raw "\" and ";", NUL and other control
// characters, invalid percent-encoding and invalid UTF-8.
func NormalizePath(escaped string) (string, error) {
	if escaped == "" {
		return "/", nil
	}
	if escaped[0] != '/' {
		return "", errBadPath
	}
	var b strings.Builder
	b.Grow(len(escaped))
	for i := 0; i < len(escaped); i++ {
		c := escaped[i]
		switch {
		case c == '%':
			if i+2 >= len(escaped) || !isHex(escaped[i+1]) || !isHex(escaped[i+2]) {
				return "", errBadPath
			}
			d := unhex(escaped[i+1])<<4 | unhex(escaped[i+2])
			switch d {
			case '/', '\\', '#', '?', ';', '%':
				return "", errBadPath
			}
			if d < 0x20 || d == 0x7f {
				return "", errBadPath
			}
			b.WriteByte(d)
			i += 2
		case c == '\\' || c == ';' || c == '#' || c == '?' || c < 0x20 || c == 0x7f || c == ' ':
			return "", errBadPath
		default:
			b.WriteByte(c)
		}
	}
	p := b.String()
	if !utf8.ValidString(p) {
		return "", errBadPath
	}
	return cleanPath(p), nil
}

// cleanPath removes dot segments and merges duplicate slashes, keeping a trailing slash.
func cleanPath(p string) string {
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for _, s := range segs[1:] {
		switch s {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
		}
	}
	clean := "/" + strings.Join(out, "/")
	last := segs[len(segs)-1]
	if (last == "" || last == "." || last == "..") && clean != "/" {
		clean += "/"
	}
	return clean
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}
