package mask

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStatus checks the success marker of Layout.Status: a document is a failure only when a
// value at the path is present and not OK, and a failure counts nothing.
func TestStatus(t *testing.T) {
	lark := Layout{Records: "data.items", HasRecords: true, ID: "record_id", Status: Status{Path: "code", OK: "0"}}
	kingdee := Layout{HasRecords: true, Columns: []string{"FNumber"}, Status: Status{Path: "*.*.Result.ResponseStatus.IsSuccess", OK: "true"}}
	tests := []struct {
		name    string
		layout  Layout
		in      string
		records int
		failed  bool
	}{
		{"ok", lark, `{"code":0,"data":{"items":[{"record_id":"r1"},{"record_id":"r2"}]}}`, 2, false},
		{"ok after the records", lark, `{"data":{"items":[{"record_id":"r1"}]},"code":0}`, 1, false},
		{"no marker", lark, `{"data":{"items":[{"record_id":"r1"}]}}`, 1, false},
		{"error code", lark, `{"code":99991663,"msg":"token invalid","data":{}}`, 0, true},
		{"error code after records", lark, `{"data":{"items":[{"record_id":"r1"}]},"code":1}`, 0, true},
		{"duplicate marker, one bad", lark, `{"code":0,"data":{"items":[{"record_id":"r1"}]},"code":5}`, 0, true},
		{"container at the path", lark, `{"code":{"v":0},"data":{"items":[{"record_id":"r1"}]}}`, 0, true},
		{"nested code is not the marker", lark, `{"code":0,"data":{"items":[{"record_id":"r1","code":7}]}}`, 1, false},
		{"negative zero is not 0", lark, `{"code":-0,"data":{"items":[]}}`, 0, true},
		{"rows ok", kingdee, `[["C1"],["C2"]]`, 2, false},
		{"rows failure", kingdee, `[[{"Result":{"ResponseStatus":{"IsSuccess":false}}}]]`, 0, true},
		{"rows success envelope", kingdee, `[[{"Result":{"ResponseStatus":{"IsSuccess":true}}}]]`, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(Plan{}, tc.layout, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			st, err := p.Rewrite(&out, strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if st.Records != tc.records || st.Failed != tc.failed {
				t.Errorf("Records, Failed = %d, %v; want %d, %v", st.Records, st.Failed, tc.records, tc.failed)
			}
			if tc.failed && st.IDs != nil {
				t.Errorf("a failure kept ids %q", st.IDs)
			}
			if out.String() != tc.in {
				t.Errorf("output changed: %s", out.String())
			}
		})
	}
	if _, err := Compile(Plan{}, Layout{Status: Status{Path: "a..b"}}, Limits{}); err == nil {
		t.Error("Compile accepted an empty status path segment")
	}
}

// TestOpaque checks Layout.Opaque: ids that look like bank cards pass the detectors, the same
// digits elsewhere do not, and a plan rule for the name still applies.
func TestOpaque(t *testing.T) {
	const id = "5725767000000410001" // a Zoho record id, Luhn-valid
	in := `{"data":[{"id":"` + id + `","Owner":{"id":` + id + `,"name":"王小明"},"Description":"卡号 ` + id + `"}]}`
	// JSON written into a text field is text: an "id" key in it is not opaque.
	embedded := `{"data":[{"id":"1","Note":"{\"id\":\"` + id + `\"}"}]}`
	layout := Layout{Records: "data", HasRecords: true, ID: "id", Opaque: []string{"id"}}
	tests := []struct {
		name string
		plan Plan
		want string
	}{
		{"kept", Plan{Detect: []string{"bank_card"}},
			`{"data":[{"id":"` + id + `","Owner":{"id":` + id + `,"name":"王小明"},"Description":"卡号 572576*********0001"}]}`},
		{"plan wins", Plan{Detect: []string{"bank_card"}, Fields: map[string]Action{"ID": {Kind: Redact}}},
			`{"data":[{"id":"***","Owner":{"id":"***","name":"王小明"},"Description":"卡号 572576*********0001"}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(tc.plan, layout, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			st, err := p.Rewrite(&out, strings.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("Rewrite =\n%s\nwant\n%s", out.String(), tc.want)
			}
			if st.Records != 1 || len(st.IDs) != 1 || st.IDs[0] != id {
				t.Errorf("Records, IDs = %d, %q; want 1, [%s]", st.Records, st.IDs, id)
			}
			out.Reset()
			if _, err := p.Rewrite(&out, strings.NewReader(embedded)); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out.String(), id) {
				t.Errorf("Rewrite(%s) = %s: an id key inside a text field kept its digits", embedded, out.String())
			}
		})
	}
}

// TestSkipMatchesWalk runs every golden input, every malformed document and a few shaped
// ones through programs that change nothing: skipping what nothing reaches must give what
// walking it gives, byte for byte, error for error.
func TestSkipMatchesWalk(t *testing.T) {
	noop := mustCompile(t, Plan{}, Layout{Records: "data", HasRecords: true}, Limits{MaxDepth: 64})
	counting := mustCompile(t, Plan{Fields: map[string]Action{"note": {Kind: Keep}}}, Layout{Records: "data.*.rows", HasRecords: true,
		ID: "fields.id", Nested: []string{"records"}, Status: Status{Path: "code", OK: "0"}, Capture: "data.*.next", Opaque: []string{"id"}}, Limits{MaxDepth: 64})
	var inputs []string
	for _, m := range malformedJSON { // as the document, and where only skip reads it
		inputs = append(inputs, m, `{"data":[{"a":`+m+`}]}`, `{"x":`+m+`,"data":[]}`)
	}
	inputs = append(inputs,
		`{"code":0,"data":[{"rows":[{"fields":{"id":"r1","x":[1,2,{"y":"z"}]},"records":[{"fields":{"id":"n1"}}]}]}]}`,
		`{"data":[{"a":`+strings.Repeat(`[`, 70)+strings.Repeat(`]`, 70)+`}]}`,
		`{"data":[{"a":"`+strings.Repeat(" ", 300)+`", "b" :`+strings.Repeat(" ", 300)+`1}]}`,
		`{"data":[{"k\u0000":1}]}`, `{"data":[{"k":"\ud800"}]}`, `{"data":[{"k":-01}]}`, `{"data":[{"k":1.}]}`,
	)
	files, _ := filepath.Glob("testdata/*.in.json")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, string(b))
	}
	for _, in := range inputs {
		checkSkip(t, noop, []byte(in))
		checkSkip(t, counting, []byte(in))
	}
}

// TestCapture checks Layout.Capture: the first string at the path, decoded, bounded, never
// from a record or from JSON inside a string.
func TestCapture(t *testing.T) {
	layout := Layout{Records: "records", HasRecords: true, Capture: "nextRecordsUrl"}
	next := "/services/data/v62.0/query/01gD0000002HU6KIAW-2000"
	tests := []struct{ name, in, want string }{
		{"after the records", `{"totalSize":3,"done":false,"records":[{"Id":"1"}],"nextRecordsUrl":"` + next + `"}`, next},
		{"before the records", `{"nextRecordsUrl":"` + next + `","records":[]}`, next},
		{"escaped", `{"nextRecordsUrl":"\/services\/data\/v62.0\/query\/01g-2000","records":[]}`, "/services/data/v62.0/query/01g-2000"},
		{"first of duplicates", `{"nextRecordsUrl":"/a","nextRecordsUrl":"/b","records":[]}`, "/a"},
		{"last page", `{"done":true,"records":[{"Id":"1"}]}`, ""},
		{"not a string", `{"nextRecordsUrl":null,"records":[]}`, ""},
		{"inside a record", `{"records":[{"nextRecordsUrl":"/x"}]}`, ""},
		{"inside a string", `{"note":"{\"nextRecordsUrl\":\"/x\"}","records":[]}`, ""},
		{"too long", `{"nextRecordsUrl":"/` + strings.Repeat("a", maxCapture) + `","records":[]}`, ""},
	}
	p, err := Compile(Plan{Detect: []string{"phone"}}, layout, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := p.Rewrite(io.Discard, strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if st.Captured != tc.want {
				t.Errorf("Captured = %q, want %q", st.Captured, tc.want)
			}
		})
	}
}
