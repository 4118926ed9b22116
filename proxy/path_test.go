package proxy

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "/api/customers", want: "/api/customers"},
		{in: "", want: "/"},
		{in: "/", want: "/"},
		{in: "/api/customers/", want: "/api/customers/"},
		{in: "/public/../admin/export", want: "/admin/export"},
		{in: "/public/./../admin", want: "/admin"},
		{in: "/public/%2e%2e/admin", want: "/admin"},
		{in: "/public/.%2E/admin", want: "/admin"},
		{in: "/public/%2E./admin", want: "/admin"},
		{in: "/../../etc/passwd", want: "/etc/passwd"},
		{in: "/admin//export", want: "/admin/export"},
		{in: "///admin", want: "/admin"},
		{in: "/api/customers/..", want: "/api/"},
		{in: "/api/customers/.", want: "/api/customers/"},
		{in: "/api/%E5%AE%A2%E6%88%B7", want: "/api/客户"},
		{in: "/api/c%41", want: "/api/cA"},
		{in: "/admin%2Fexport", bad: true},
		{in: "/admin%2fexport", bad: true},
		{in: "/admin%5Cexport", bad: true},
		{in: "/admin\\export", bad: true},
		{in: "/admin%00", bad: true},
		{in: "/admin%23x", bad: true},
		{in: "/admin#x", bad: true},
		{in: "/admin%3Fx=1", bad: true},
		{in: "/admin;jsessionid=1", bad: true},
		{in: "/admin%3Bx", bad: true},
		{in: "/admin%252e%252e", bad: true},
		{in: "/admin%2", bad: true},
		{in: "/admin%zz", bad: true},
		{in: "/admin%ff", bad: true},
		{in: "/admin%0d%0a", bad: true},
		{in: "admin", bad: true},
	}
	for _, tt := range tests {
		got, err := NormalizePath(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("NormalizePath(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizePath(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzNormalizePath checks the invariants routing relies on: the result is absolute, has no
// dot segments or empty segments, is valid UTF-8, is a fixed point, and survives the escaping
// the proxy applies for the upstream unchanged (what policy sees is what the upstream gets).
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/api/customers", "/public/../admin", "/a/%2e%2e/b", "//x", "/a%2Fb", "/a;b", "/%E5%AE%A2", "/a/./b/../c/", "/.%2e/", "/a%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := NormalizePath(in)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, "/") || !utf8.ValidString(p) {
			t.Fatalf("NormalizePath(%q) = %q: not absolute UTF-8", in, p)
		}
		for i, seg := range strings.Split(p, "/")[1:] {
			last := i == len(strings.Split(p, "/"))-2
			if seg == "." || seg == ".." || (seg == "" && !last) {
				t.Fatalf("NormalizePath(%q) = %q: dot or empty segment", in, p)
			}
		}
		if strings.ContainsAny(p, "\\;#?%\x00") {
			t.Fatalf("NormalizePath(%q) = %q: contains a refused character", in, p)
		}
		again, err := NormalizePath((&url.URL{Path: p}).EscapedPath())
		if err != nil || again != p {
			t.Fatalf("upstream would see %q (err %v), policy saw %q", again, err, p)
		}
	})
}
