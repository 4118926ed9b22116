package mask

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func mustCompile(t testing.TB, p Plan, l Layout, lim Limits) *Program {
	t.Helper()
	prog, err := Compile(p, l, lim)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return prog
}

// malformedJSON are bodies a strict parser must refuse (REDTEAM 23 and friends).
var malformedJSON = []string{
	`{"a":1 /* comment */}`,
	"// comment\n{\"a\":1}",
	`{"a":1} // comment`,
	`{"a":1,}`,
	`[1,2,]`,
	`{"data":[{"phone":"13812345678"},]}`,
	`{"a":NaN}`,
	`{"a":Infinity}`,
	`[-Infinity]`,
	")]}',\n{\"a\":1}",
	`)]}'{"a":1}`,
	`{"a":1} x`,
	`{"a":1}{"b":2}`,
	`{"a":1}]`,
	"\ufeff{\"a\":1}",
	`{'a':1}`,
	`{a:1}`,
	"[\"\x01\"]",
	"[\"tab\tinside\"]",
	"[\"\xff\"]",
	"[\"\xe5\xbc\"]",
	"[\"\xed\xa0\x80\"]",
	`["\u12"]`,
	`["\x"]`,
	`["\'"]`,
	`[01]`,
	`[1.]`,
	`[.5]`,
	`[1e]`,
	`[+1]`,
	`[-]`,
	`[0x10]`,
	`{"a" 1}`,
	`{"a":1 "b":2}`,
	`{"a":1,,"b":2}`,
	`{,}`,
	`[,1]`,
	`[1 2]`,
	``,
	"   \n",
	`[`,
	`{"a":`,
	`{"a"`,
	`"abc`,
	`tru`,
	`nul`,
	`[true false]`,
	`[True]`,
	`[undefined]`,
	`{"a":1}}`,
	`]`,
	`[1]]`,
}

func TestMalformed(t *testing.T) {
	progs := map[string]*Program{
		"no-op":    mustCompile(t, Plan{}, Layout{}, Limits{}),
		"envelope": mustCompile(t, Plan{Fields: map[string]Action{"phone": {Kind: Mask}}, Detect: []string{"phone"}}, Layout{}, Limits{}),
		"records":  mustCompile(t, Plan{Fields: map[string]Action{"a": {Kind: Drop}}, Rows: []RowRule{{Field: "a", Op: "neq", Value: []byte(`1`)}}}, Layout{Records: "data", HasRecords: true}, Limits{}),
		"root":     mustCompile(t, Plan{Fields: map[string]Action{"a": {Kind: Null}}}, Layout{HasRecords: true}, Limits{}),
		"this":     mustCompile(t, Plan{Fields: map[string]Action{"a": {Kind: Redact}}}, Layout{Records: "@this"}, Limits{}),
	}
	for name, p := range progs {
		for _, in := range malformedJSON {
			for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in))} {
				_, err := p.Rewrite(io.Discard, r)
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("%s: Rewrite(%q) error = %v, want ErrMalformed", name, in, err)
				}
			}
		}
	}
}

func TestTooDeep(t *testing.T) {
	p := mustCompile(t, Plan{Fields: map[string]Action{"a": {Kind: Mask}}}, Layout{Records: "data", HasRecords: true}, Limits{})
	deep := func(open, close string, n int) string {
		return strings.Repeat(open, n) + strings.Repeat(close, n)
	}
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"arrays 100000", deep("[", "]", 100000), ErrTooDeep},
		{"objects 100000", deep(`{"a":`, "}", 100000), ErrTooDeep},
		{"unclosed 100000", strings.Repeat("[", 100000), ErrTooDeep},
		{"inside a record", `{"data":[` + deep(`{"x":`, "}", 100000)[:600000] + `]}`, ErrTooDeep},
		{"at the limit", deep("[", "]", 512), nil},
		{"one over the limit", deep("[", "]", 513), ErrTooDeep},
		{"records count toward depth", `{"data":[` + deep("[", "]", 510) + `]}`, nil},
		{"records one over", `{"data":[` + deep("[", "]", 511) + `]}`, ErrTooDeep},
		{"embedded JSON counts toward depth", `{"s":"` + deep("[", "]", 600) + `"}`, ErrTooDeep},
	}
	for _, tt := range tests {
		_, err := p.Rewrite(io.Discard, strings.NewReader(tt.in))
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: Rewrite error = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestTooLarge(t *testing.T) {
	lim := Limits{MaxRecordBytes: 1024}
	big := strings.Repeat("x", 2000)
	tests := []struct {
		name   string
		layout Layout
		in     string
		want   error
	}{
		{"record over the limit", Layout{Records: "data", HasRecords: true}, `{"data":[{"a":"x"},{"a":"` + big + `"}]}`, ErrTooLarge},
		{"record of many small tokens", Layout{Records: "data", HasRecords: true}, `{"data":[[` + strings.Repeat("1,", 1000) + `1]]}`, ErrTooLarge},
		{"records under the limit", Layout{Records: "data", HasRecords: true}, `{"data":[` + strings.Repeat(`{"a":"`+big[:900]+`"},`, 50) + `{}]}`, nil},
		{"token in the envelope", Layout{Records: "data", HasRecords: true}, `{"note":"` + big + `","data":[]}`, ErrTooLarge},
		{"whole document record", Layout{Records: "@this"}, `{"a":"` + big + `"}`, ErrTooLarge},
		{"envelope of small tokens is fine", Layout{}, `[` + strings.Repeat(`"`+big[:500]+`",`, 100) + `1]`, nil},
	}
	for _, tt := range tests {
		p := mustCompile(t, Plan{Detect: []string{"phone"}}, tt.layout, lim)
		_, err := p.Rewrite(io.Discard, strings.NewReader(tt.in))
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: Rewrite error = %v, want %v", tt.name, err, tt.want)
		}
	}
	csvProg := mustCompile(t, Plan{}, Layout{Format: FormatCSV}, lim)
	for _, in := range []string{"a,b\n1," + big + "\n", "a\n\"" + strings.Repeat(big, 20) + "\n"} {
		if _, err := csvProg.Rewrite(io.Discard, strings.NewReader(in)); !errors.Is(err, ErrTooLarge) {
			t.Errorf("CSV Rewrite(%d bytes) error = %v, want ErrTooLarge", len(in), err)
		}
	}
}

func TestDenied(t *testing.T) {
	plan := Plan{
		Fields: map[string]Action{"id_card": {Kind: Deny}, "profile": {Kind: Drop}, "phone": {Kind: Mask}},
		Rows:   []RowRule{{Field: "owner", Op: "eq", Value: []byte(`"alice"`)}},
	}
	tests := []struct {
		name string
		in   string
	}{
		{"in a record", `{"data":[{"owner":"alice","ID_Card":"110105199001011232"}]}`},
		{"in the envelope", `{"data":[],"error":{"id_card":null}}`},
		{"in a dropped value", `{"data":[{"owner":"alice","profile":{"id_card":"x"}}]}`},
		{"in a record removed by rows", `{"data":[{"owner":"bob","id_card":"x"}]}`},
		{"in JSON inside a string", `{"data":[{"owner":"alice","payload":"{\"id_card\":1}"}]}`},
		{"escaped key", `{"data":[{"owner":"alice","id_c\u0061rd":1}]}`},
	}
	p := mustCompile(t, plan, Layout{Records: "data", HasRecords: true}, Limits{})
	for _, tt := range tests {
		_, err := p.Rewrite(io.Discard, strings.NewReader(tt.in))
		var d *DeniedError
		if !errors.As(err, &d) || d.Field != "id_card" {
			t.Errorf("%s: Rewrite error = %v, want *DeniedError{id_card}", tt.name, err)
			continue
		}
		var dv DeniedError
		if !errors.As(err, &dv) || dv.Field != "id_card" {
			t.Errorf("%s: errors.As(%v, DeniedError) = %+v, want Field id_card", tt.name, err, dv)
		}
		if !errors.Is(err, ErrDenied) {
			t.Errorf("%s: errors.Is(%v, ErrDenied) = false", tt.name, err)
		}
		if !strings.Contains(err.Error(), `"id_card"`) {
			t.Errorf("%s: error %q does not name the field", tt.name, err)
		}
	}
	if _, err := p.Rewrite(io.Discard, strings.NewReader(`{"data":[{"owner":"alice","id_card_no":"x","note":"id_card"}]}`)); err != nil {
		t.Errorf("Rewrite without the denied field: %v", err)
	}
	csvProg := mustCompile(t, plan, Layout{Format: FormatCSV}, Limits{})
	var d *DeniedError
	if _, err := csvProg.Rewrite(io.Discard, strings.NewReader("name, ID_CARD \nx,y\n")); !errors.As(err, &d) || d.Field != "id_card" {
		t.Errorf("CSV Rewrite error = %v, want *DeniedError{id_card}", err)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		plan Plan
		l    Layout
		lim  Limits
	}{
		{"hash without key", Plan{Fields: map[string]Action{"a": {Kind: Hash}}}, Layout{}, Limits{}},
		{"unknown kind", Plan{Fields: map[string]Action{"a": {Kind: 42}}}, Layout{}, Limits{}},
		{"unknown format", Plan{Fields: map[string]Action{"a": {Kind: Mask, Format: "passport"}}}, Layout{}, Limits{}},
		{"format on redact", Plan{Fields: map[string]Action{"a": {Kind: Redact, Format: "phone"}}}, Layout{}, Limits{}},
		{"empty name", Plan{Fields: map[string]Action{"": {Kind: Mask}}}, Layout{}, Limits{}},
		{"empty path segment", Plan{Fields: map[string]Action{"a..b": {Kind: Mask}}}, Layout{}, Limits{}},
		{"unknown detector", Plan{Detect: []string{"passport"}}, Layout{}, Limits{}},
		{"unknown op", Plan{Rows: []RowRule{{Field: "a", Op: "gt", Value: []byte(`1`)}}}, Layout{}, Limits{}},
		{"in without array", Plan{Rows: []RowRule{{Field: "a", Op: "in", Value: []byte(`1`)}}}, Layout{}, Limits{}},
		{"eq with object", Plan{Rows: []RowRule{{Field: "a", Op: "eq", Value: []byte(`{}`)}}}, Layout{}, Limits{}},
		{"row value not JSON", Plan{Rows: []RowRule{{Field: "a", Op: "eq", Value: []byte(`alice`)}}}, Layout{}, Limits{}},
		{"row without field", Plan{Rows: []RowRule{{Op: "eq", Value: []byte(`1`)}}}, Layout{}, Limits{}},
		{"bad records path", Plan{}, Layout{Records: "data..items", HasRecords: true}, Limits{}},
		{"bad format", Plan{}, Layout{Format: 7}, Limits{}},
		{"negative header row", Plan{}, Layout{Format: FormatCSV, HeaderRow: -1}, Limits{}},
		{"depth over the cap", Plan{}, Layout{}, Limits{MaxDepth: 1 << 20}},
		{"negative record limit", Plan{}, Layout{}, Limits{MaxRecordBytes: -1}},
	}
	for _, tt := range tests {
		if _, err := Compile(tt.plan, tt.l, tt.lim); err == nil {
			t.Errorf("%s: Compile = nil error, want an error", tt.name)
		}
	}
}

func TestReadAndWriteErrors(t *testing.T) {
	p := mustCompile(t, Plan{Detect: []string{"phone"}}, Layout{}, Limits{})
	boom := errors.New("boom")
	_, err := p.Rewrite(io.Discard, iotest.TimeoutReader(strings.NewReader(`{"a":"`+strings.Repeat("x", 200000)+`"}`)))
	if !errors.Is(err, iotest.ErrTimeout) || errors.Is(err, ErrMalformed) {
		t.Errorf("Rewrite(failing reader) error = %v, want the read error", err)
	}
	_, err = p.Rewrite(failWriter{boom}, strings.NewReader(`{"a":1}`))
	if !errors.Is(err, boom) {
		t.Errorf("Rewrite(failing writer) error = %v, want %v", err, boom)
	}
	csvProg := mustCompile(t, Plan{}, Layout{Format: FormatCSV}, Limits{})
	_, err = csvProg.Rewrite(failWriter{boom}, strings.NewReader("a,b\n1,2\n"))
	if !errors.Is(err, boom) {
		t.Errorf("CSV Rewrite(failing writer) error = %v, want %v", err, boom)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestMalformedCSV(t *testing.T) {
	p := mustCompile(t, Plan{Fields: map[string]Action{"a": {Kind: Mask}}}, Layout{Format: FormatCSV}, Limits{})
	for _, in := range []string{
		"a,b\n1,x\"y\n",
		"a,b\n\"unterminated,2\n",
		"a,b\n\"x\"y,2\n",
		"a,b\n\xff,2\n",
	} {
		if _, err := p.Rewrite(io.Discard, strings.NewReader(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Rewrite(%q) error = %v, want ErrMalformed", in, err)
		}
	}
}

func TestMasks(t *testing.T) {
	tests := []struct {
		plan Plan
		want bool
	}{
		{Plan{}, false},
		{Plan{Fields: map[string]Action{"a": {Kind: Keep}, "b": {Kind: Keep}}}, false},
		{Plan{Fields: map[string]Action{"a": {Kind: Keep}, "b": {Kind: Null}}}, true},
		{Plan{Fields: map[string]Action{"a": {Kind: Deny}}}, true},
		{Plan{Rows: []RowRule{{Field: "a", Op: "eq", Value: []byte(`1`)}}}, true},
		{Plan{Detect: []string{"email"}}, true},
	}
	for _, tt := range tests {
		p := mustCompile(t, tt.plan, Layout{}, Limits{})
		if got := p.Masks(); got != tt.want {
			t.Errorf("Compile(%+v).Masks() = %v, want %v", tt.plan, got, tt.want)
		}
	}
	// A no-op program still validates, and copies valid bodies byte for byte.
	p := mustCompile(t, Plan{Fields: map[string]Action{"a": {Kind: Keep}}}, Layout{Records: "data", HasRecords: true}, Limits{})
	in := "{ \"data\" : [ {\"a\":\"13812345678\", \"n\": 1.50e+3 } ],\n\t\"b\":\"\\u00e9\" }\n"
	var out bytes.Buffer
	if _, err := p.Rewrite(&out, strings.NewReader(in)); err != nil || out.String() != in {
		t.Errorf("no-op Rewrite(%q) = %q, %v; want the input unchanged", in, out.String(), err)
	}
}
