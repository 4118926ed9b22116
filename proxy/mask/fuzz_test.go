package mask

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// planted is the secret the fuzz targets plant under keys the plan hides.
const planted = "S3cr3t-Zq9-Planted"

// fuzzPlan hides "phone", "ssn", "tok", "card" and "gone" five different ways.
func fuzzPlan() Plan {
	return Plan{
		Fields: map[string]Action{
			"phone": {Kind: Mask}, "ssn": {Kind: Redact}, "tok": {Kind: Hash},
			"card": {Kind: Drop}, "gone": {Kind: Null}, "items.*.mobile": {Kind: Mask, Format: "phone"},
		},
		Rows:    []RowRule{{Field: "owner", Op: "neq", Value: []byte(`"mallory"`)}},
		Detect:  allDetectors,
		HashKey: []byte("fuzz"),
	}
}

// stringsIn returns every key and string value of the JSON document doc.
func stringsIn(doc []byte) []string {
	var v any
	if json.Unmarshal(doc, &v) != nil {
		return nil
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for k, e := range v {
				out = append(out, k)
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// nulKey reports whether the JSON document doc has an object key holding a NUL, which
// Rewrite refuses on purpose (parsers disagree on where such a key ends).
func nulKey(doc []byte) bool {
	var v any
	if json.Unmarshal(doc, &v) != nil {
		return false
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case []any:
			return slices.ContainsFunc(v, walk)
		case map[string]any:
			for k, e := range v {
				if strings.ContainsRune(k, 0) || walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}

func mentionsPlanted(doc []byte) bool {
	if bytes.Contains(doc, []byte(planted)) {
		return true
	}
	for _, s := range stringsIn(doc) {
		if strings.Contains(s, planted) {
			return true
		}
	}
	return false
}

func hasLongSpace(doc []byte) bool {
	run := 0
	for _, c := range doc {
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			run++
			if run > wsKeep {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// FuzzRewriteJSON checks, for any input: a body json.Valid refuses is refused; a body it
// accepts is rewritten to valid JSON unless it is too deep or holds invalid UTF-8; the result
// does not depend on how the body is split into reads; a no-op plan copies the body byte
// for byte; and a secret planted under hidden keys around the input never comes out.
func FuzzRewriteJSON(f *testing.F) {
	for _, s := range malformedJSON {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"data":[{"phone":"13812345678","owner":"alice"}]}`))
	masking := mustCompile(f, fuzzPlan(), Layout{Records: "data", HasRecords: true, ID: "id", Nested: []string{"records"}, Structural: []string{"type"}}, Limits{MaxDepth: 64})
	positional := mustCompile(f, fuzzPlan(), Layout{Records: "values", HasRecords: true, ColumnsFromFirstRecord: true}, Limits{MaxDepth: 64})
	noop := mustCompile(f, Plan{}, Layout{Records: "data", HasRecords: true}, Limits{MaxDepth: 64})
	counting := mustCompile(f, Plan{Fields: map[string]Action{"note": {Kind: Keep}}}, Layout{Records: "data.*.rows", HasRecords: true,
		ID: "fields.id", Nested: []string{"records"}, Status: Status{Path: "code", OK: "0"}, Capture: "data.*.next", Opaque: []string{"id"}}, Limits{MaxDepth: 64})
	f.Fuzz(func(t *testing.T, data []byte) {
		valid := json.Valid(data)
		for _, p := range []*Program{masking, positional, noop} {
			var out bytes.Buffer
			st, err := p.Rewrite(&out, bytes.NewReader(data))
			switch {
			case !valid && err == nil:
				t.Fatalf("Rewrite(%q) accepted a body json.Valid refuses: %q", data, out.Bytes())
			case valid && err != nil:
				if !errors.Is(err, ErrTooDeep) && !(errors.Is(err, ErrMalformed) && (!utf8.Valid(data) || nulKey(data))) {
					t.Fatalf("Rewrite(%q) refused a valid body: %v", data, err)
				}
			case valid && !json.Valid(out.Bytes()):
				t.Fatalf("Rewrite(%q) = %q, not valid JSON", data, out.Bytes())
			}
			var split bytes.Buffer
			st2, err2 := p.Rewrite(&split, iotest.HalfReader(bytes.NewReader(data)))
			if (err == nil) != (err2 == nil) || err == nil && (!bytes.Equal(out.Bytes(), split.Bytes()) || st.Records != st2.Records) {
				t.Fatalf("Rewrite(%q) depends on reads: %q, %v vs %q, %v", data, out.Bytes(), err, split.Bytes(), err2)
			}
			if p == noop && err == nil && !hasLongSpace(data) && !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("no-op Rewrite(%q) = %q, want the input", data, out.Bytes())
			}
		}
		for _, p := range []*Program{noop, counting} {
			checkSkip(t, p, data)
		}
		if !valid || mentionsPlanted(data) {
			return
		}
		s := `"` + planted + `"`
		d := string(data)
		docs := map[*Program]string{
			masking: `{"phone":` + s + `,"data":[{"phone":` + s + `,"ssn":` + s + `,"tok":` + s + `,"card":` + s + `,"gone":` + s +
				`,"items":[{"mobile":` + s + `}],"x":` + d + `},` + d + `],"extra":` + d + `,"ssn":[` + s + `]}`,
			positional: `{"values":[["phone","ssn","tok","card","gone","x"],[` + s + `,` + s + `,` + s + `,` + s + `,` + s + `,` + d +
				`],` + d + `,{"items":[{"mobile":` + s + `}]}],"phone":` + d + `}`,
		}
		for p, doc := range docs {
			var out bytes.Buffer
			if _, err := p.Rewrite(&out, strings.NewReader(doc)); err != nil {
				if errors.Is(err, ErrTooDeep) || errors.Is(err, ErrMalformed) && (!utf8.Valid(data) || nulKey(data)) {
					continue
				}
				t.Fatalf("Rewrite(%q) error: %v", doc, err)
			}
			if bytes.Contains(out.Bytes(), []byte("Planted")) {
				t.Fatalf("Rewrite(%q) = %q: the planted secret leaked", doc, out.Bytes())
			}
			if !json.Valid(out.Bytes()) {
				t.Fatalf("Rewrite(%q) = %q, not valid JSON", doc, out.Bytes())
			}
		}
	})
}

// checkSkip checks that a program that changes nothing gives the same output, error and
// stats when it skips the values nothing can reach as when it walks them.
func checkSkip(t *testing.T, p *Program, data []byte) {
	t.Helper()
	if !p.skip {
		t.Fatal("checkSkip needs a program that skips")
	}
	walk := *p
	walk.skip = false
	var a, b bytes.Buffer
	sa, ea := p.Rewrite(&a, bytes.NewReader(data))
	sb, eb := walk.Rewrite(&b, bytes.NewReader(data))
	if fmt.Sprint(ea) != fmt.Sprint(eb) || ea == nil && (!bytes.Equal(a.Bytes(), b.Bytes()) || !reflect.DeepEqual(sa, sb)) {
		t.Fatalf("Rewrite(%q) skipping = %q, %+v, %v; walking = %q, %+v, %v", data, a.Bytes(), sa, ea, b.Bytes(), sb, eb)
	}
}

// FuzzRewriteCSV checks that any CSV the engine accepts comes out as CSV, that no output cell
// can run as a spreadsheet formula, and that a secret planted in hidden columns never comes out.
func FuzzRewriteCSV(f *testing.F) {
	f.Add([]byte("phone,ssn,card,note\n13812345678,1,2,hi\n"))
	f.Add([]byte("=1+1,\"a\nb\",\"x,y\"\n-3,@a,\t\n"))
	f.Add([]byte("\ufeffa,b\r\n1\r\n1,2,3\r\n"))
	f.Add([]byte("a,\"b\"c\n"))
	f.Add([]byte("a,b\n\"unterminated\n"))
	plan := fuzzPlan()
	plan.Rows = []RowRule{{Field: "owner", Op: "neq", Value: []byte(`"mallory"`)}}
	p := mustCompile(f, plan, Layout{Format: FormatCSV, ID: "id"}, Limits{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		if _, err := p.Rewrite(&out, bytes.NewReader(data)); err == nil {
			checkCSVOutput(t, data, out.Bytes())
		}
		if !utf8.Valid(data) || bytes.Contains(data, []byte("Planted")) {
			return
		}
		var in bytes.Buffer
		w := csv.NewWriter(&in)
		_ = w.Write([]string{"phone", "ssn", "tok", "card", "gone", "note"})
		_ = w.Write([]string{planted, planted, planted, planted, planted, string(data)})
		w.Flush()
		in.Write(data)
		out.Reset()
		if _, err := p.Rewrite(&out, bytes.NewReader(in.Bytes())); err != nil {
			return
		}
		checkCSVOutput(t, in.Bytes(), out.Bytes())
		if bytes.Contains(out.Bytes(), []byte("Planted")) {
			t.Fatalf("Rewrite(%q) = %q: the planted secret leaked", in.Bytes(), out.Bytes())
		}
	})
}

func checkCSVOutput(t *testing.T, in, out []byte) {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(out, []byte("\ufeff"))))
	r.FieldsPerRecord = -1
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("Rewrite(%q) = %q, not CSV: %v", in, out, err)
		}
		for _, cell := range rec {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) && !plainNumber(cell) {
				t.Fatalf("Rewrite(%q) = %q: cell %q can run as a formula", in, out, cell)
			}
		}
	}
}

// FuzzScan checks the detectors and the maskers on any text: valid UTF-8 stays valid, a text
// without hits comes back unchanged, masking twice finds nothing new, and no mask format
// returns a value without stars unchanged.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		"你好，我的手机号是13812345678，身份证110105199001011232", "6228 4800 1234 5678 903", "+86 139-0013-5521",
		"8613700001111", "13812345678@qq.com", "a.b@example.co.uk", "138123456789", "44030519920811632X",
		"北京市朝阳区建国路88号", "欧阳娜娜", "Maria Anders", "415 Mission St, San Francisco", "",
		"１３８１２３４５６７８", "电话：１３８-１２３４-５６７８", "ａｂｃ＠ｅｘａｍｐｌｅ．ｃｏｍ", "x＠y.cn",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, hits := Scan(allDetectors, s)
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("Scan(%q) = %q, invalid UTF-8", s, out)
		}
		if hits == nil && out != s {
			t.Fatalf("Scan(%q) = %q without hits", s, out)
		}
		if hits != nil && !scanCandidate([]byte(s)) {
			t.Fatalf("scanCandidate(%q) = false, but Scan finds %v: the walker would skip the hits", s, hits)
		}
		if again, more := Scan(allDetectors, out); more != nil {
			t.Fatalf("Scan(Scan(%q)) = %q, %v: masked text still has hits", s, again, more)
		}
		for _, format := range []string{"", "phone", "id_card", "bank_card", "email", "name", "address", "generic"} {
			m := MaskValue(format, s)
			if utf8.ValidString(s) && !utf8.ValidString(m) {
				t.Fatalf("MaskValue(%q, %q) = %q, invalid UTF-8", format, s, m)
			}
			if s != "" && !strings.Contains(s, "*") && m == s {
				t.Fatalf("MaskValue(%q, %q) returned the value unchanged", format, s)
			}
		}
	})
}
