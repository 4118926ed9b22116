package sheets

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in   string
		want cells
		ok   bool
	}{
		{"Sheet1!A1:H1000", cells{Sheet: "Sheet1", StartCol: 0, StartRow: 1, EndCol: 7, EndRow: 1000}, true},
		{"'客户 名单'!A1:H1000", cells{Sheet: "客户 名单", StartCol: 0, StartRow: 1, EndCol: 7, EndRow: 1000}, true},
		{"'it''s'!B2:C", cells{Sheet: "it's", StartCol: 1, StartRow: 2, EndCol: 2}, true},
		{"Sheet1!$B$2:$D$9", cells{Sheet: "Sheet1", StartCol: 1, StartRow: 2, EndCol: 3, EndRow: 9}, true},
		{"Sheet1!H9:B2", cells{Sheet: "Sheet1", StartCol: 1, StartRow: 2, EndCol: 7, EndRow: 9}, true},
		{"A:H", cells{StartCol: 0, StartRow: 1, EndCol: 7}, true},
		{"Sheet1!C:E", cells{Sheet: "Sheet1", StartCol: 2, StartRow: 1, EndCol: 4}, true},
		{"Sheet1!3:10", cells{Sheet: "Sheet1", StartCol: 0, StartRow: 3, EndCol: -1, EndRow: 10}, true},
		{"Sheet1!B7", cells{Sheet: "Sheet1", StartCol: 1, StartRow: 7, EndCol: 1, EndRow: 7}, true},
		{"Sheet1!AA10:AB11", cells{Sheet: "Sheet1", StartCol: 26, StartRow: 10, EndCol: 27, EndRow: 11}, true},
		{"Sheet1!R2C1:R10C8", cells{Sheet: "Sheet1", StartCol: 0, StartRow: 2, EndCol: 7, EndRow: 10}, true},
		{"A1:H10", cells{StartCol: 0, StartRow: 1, EndCol: 7, EndRow: 10}, true},
		{"Customers", cells{Sheet: "Customers", Named: true, StartRow: 1, EndCol: -1}, true},
		{"'客户 名单'", cells{Sheet: "客户 名单", Named: true, StartRow: 1, EndCol: -1}, true},
		{"Sheet1!", cells{Sheet: "Sheet1", Named: true, StartRow: 1, EndCol: -1}, true},
		// ambiguous or malformed: refused rather than guessed
		{"Sheet1!H:A2", cells{}, false},
		{"Sheet1!A2:9", cells{}, false},
		{"Sheet1!A0", cells{}, false},
		{"Sheet1!ABCD1", cells{}, false},
		{"Sheet1!R1C1:B2", cells{}, false},
		{"!A1", cells{}, false},
		{"'unterminated!A1", cells{}, false},
		{"''!A1", cells{}, false},
		{"'a'b!A1", cells{}, false},
		{"Sheet1!A1:B2:C3", cells{}, false},
		{"", cells{}, false},
	}
	for _, tc := range tests {
		got, ok := parseRange(tc.in)
		if ok != tc.ok {
			t.Errorf("parseRange(%q) ok = %v, want %v (%+v)", tc.in, ok, tc.ok, got)
			continue
		}
		if !ok {
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("parseRange(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestColumnIndex(t *testing.T) {
	for in, want := range map[string]int{"A": 0, "b": 1, "Z": 25, "AA": 26, "AZ": 51, "ZZ": 701, "A1": -1, "": -1, "1": -1, "R1C1": -1} {
		if got := columnIndex(in); got != want {
			t.Errorf("columnIndex(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestGridFields(t *testing.T) {
	for mask, want := range map[string]bool{
		"":                                   false,
		"spreadsheetId,properties.title":     false,
		"sheets.properties":                  false,
		"sheets(properties(title,sheetId))":  false,
		"sheets/properties":                  false,
		"sheets":                             true,
		"spreadsheetId,sheets":               true,
		"sheets.data.rowData.values":         true,
		"sheets(data(rowData(values)))":      true,
		"*":                                  true,
		"sheets.properties,sheets.data":      true,
		"namedRanges,developerMetadata":      false,
		"sheets(properties,data/rowData)":    true,
		"sheetsX":                            false,
		"properties,sheets(merges,data)":     true,
		"sheets.properties.gridProperties":   false,
		"sheets(conditionalFormats,charts)":  false,
		"sheets.bandedRanges,sheets.filters": false,
	} {
		if got := gridFields(mask); got != want {
			t.Errorf("gridFields(%q) = %v, want %v", mask, got, want)
		}
	}
}
