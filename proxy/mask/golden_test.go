package mask

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden want files in testdata")

// goldenPlan is the test form of a plan and its layout: testdata/<name>.plan.json.
type goldenPlan struct {
	Fields  map[string]string `json:"fields"`
	Rows    []RowRule         `json:"rows"`
	Detect  []string          `json:"detect"`
	HashKey string            `json:"hash_key"`
	Layout  struct {
		Records                string            `json:"records"`
		HasRecords             bool              `json:"has_records"`
		ID                     string            `json:"id"`
		Nested                 []string          `json:"nested"`
		Columns                []string          `json:"columns"`
		ColumnsFromFirstRecord bool              `json:"columns_from_first_record"`
		Aliases                map[string]string `json:"aliases"`
		HeaderRow              int               `json:"header_row"`
		Structural             []string          `json:"structural"`
		Status                 struct {
			Path string `json:"path"`
			OK   string `json:"ok"`
		} `json:"status"`
	} `json:"layout"`
	Limits Limits `json:"limits"`
}

// goldenHashKey is the HMAC key of golden plans that set none.
const goldenHashKey = "golden-test-key"

func loadPlan(t testing.TB, path string) (Plan, Layout, Limits) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g goldenPlan
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&g); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	p := Plan{Rows: g.Rows, Detect: g.Detect, HashKey: []byte(g.HashKey)}
	if len(p.HashKey) == 0 {
		p.HashKey = []byte(goldenHashKey)
	}
	if len(g.Fields) > 0 {
		p.Fields = make(map[string]Action)
		for name, a := range g.Fields {
			act, err := ParseAction(a)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			p.Fields[name] = act
		}
	}
	l := Layout{
		Records: g.Layout.Records, HasRecords: g.Layout.HasRecords, ID: g.Layout.ID,
		Nested: g.Layout.Nested, Columns: g.Layout.Columns,
		ColumnsFromFirstRecord: g.Layout.ColumnsFromFirstRecord,
		Aliases:                g.Layout.Aliases, HeaderRow: g.Layout.HeaderRow,
		Status:     Status{Path: g.Layout.Status.Path, OK: g.Layout.Status.OK},
		Structural: g.Layout.Structural,
	}
	if fileExists(strings.TrimSuffix(path, ".plan.json") + ".in.csv") {
		l.Format = FormatCSV
	}
	return p, l, g.Limits
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// goldenStats is the form Stats takes in testdata/<name>.stats.json.
type goldenStats struct {
	Records int            `json:"records"`
	Removed int            `json:"removed"`
	Fields  map[string]int `json:"fields,omitempty"`
	Detects map[string]int `json:"detects,omitempty"`
	IDs     []string       `json:"ids,omitempty"`
	IDsCut  bool           `json:"ids_cut,omitempty"`
	Failed  bool           `json:"failed,omitempty"`
}

func rewriteString(t testing.TB, p *Program, in []byte, r io.Reader) ([]byte, Stats) {
	t.Helper()
	var out bytes.Buffer
	st, err := p.Rewrite(&out, r)
	if err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	return out.Bytes(), st
}

// TestGolden rewrites every testdata/<name>.in.json (or .in.csv) with <name>.plan.json and
// compares the body with <name>.want.json (.want.csv) and the stats with <name>.stats.json.
// Each input is also fed one byte at a time and must give the same result. Run with -update
// to rewrite the want files after checking the difference by hand.
func TestGolden(t *testing.T) {
	plans, err := filepath.Glob("testdata/*.plan.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) < 20 {
		t.Fatalf("found %d golden plans, want at least 20", len(plans))
	}
	for _, planPath := range plans {
		name := strings.TrimSuffix(filepath.Base(planPath), ".plan.json")
		t.Run(name, func(t *testing.T) {
			plan, layout, lim := loadPlan(t, planPath)
			ext := ".json"
			if layout.Format == FormatCSV {
				ext = ".csv"
			}
			base := strings.TrimSuffix(planPath, ".plan.json")
			in, err := os.ReadFile(base + ".in" + ext)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Compile(plan, layout, lim)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got, st := rewriteString(t, p, in, bytes.NewReader(in))
			gotStats, err := json.MarshalIndent(goldenStats{
				Records: st.Records, Removed: st.Removed, Fields: st.Fields, Detects: st.Detects,
				IDs: st.IDs, IDsCut: st.IDsCut, Failed: st.Failed,
			}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			gotStats = append(gotStats, '\n')
			if ext == ".json" && !json.Valid(got) {
				t.Errorf("output is not valid JSON:\n%s", got)
			}
			if *update {
				if err := os.WriteFile(base+".want"+ext, got, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(base+".stats.json", gotStats, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(base + ".want" + ext)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("Rewrite(%s) body mismatch (-want +got):\n%s", name, diff)
			}
			wantStats, err := os.ReadFile(base + ".stats.json")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(wantStats), string(gotStats)); diff != "" {
				t.Errorf("Rewrite(%s) stats mismatch (-want +got):\n%s", name, diff)
			}
			oneByte, st1 := rewriteString(t, p, in, iotest.OneByteReader(bytes.NewReader(in)))
			if !bytes.Equal(oneByte, got) {
				t.Errorf("Rewrite(%s) one byte at a time differs (-whole +one byte):\n%s", name, cmp.Diff(string(got), string(oneByte)))
			}
			if diff := cmp.Diff(st, st1); diff != "" {
				t.Errorf("Rewrite(%s) one byte at a time: stats differ (-whole +one byte):\n%s", name, diff)
			}
		})
	}
}
