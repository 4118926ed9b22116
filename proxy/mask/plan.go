// Package mask rewrites JSON and CSV bodies record by record according to a plan: it masks,
// hashes, drops or blocks fields, filters rows and scans free text, as pure functions over bytes.
package mask

import "encoding/json"

// Kind is what an Action does to a field's value.
type Kind uint8

// Action kinds, as written in a policy decision.
const (
	Keep   Kind = iota // leave the value as it is
	Mask               // format-aware partial mask: 138****5678
	Redact             // replace every leaf with "***"
	Hash               // keyed HMAC-SHA256 pseudonym of every leaf
	Drop               // remove the key
	Null               // replace the value with null
	Deny               // block the whole response if the field is present
)

// Action is one field rule: a Kind and, for Mask, an optional format ("phone", "id_card",
// "bank_card", "email", "name", "address", "generic"). Written "mask:phone" in policy.
type Action struct {
	Kind   Kind
	Format string
}

// RowRule is a row predicate: records whose Field fails it are removed.
// Op is "eq", "neq", "in" or "not_in"; Value is the JSON value from the decision
// (an array for in and not_in).
type RowRule struct {
	Field string
	Op    string
	Value json.RawMessage
}

// Plan is what a policy decision asks the engine to do to a response.
type Plan struct {
	// Fields maps a field name (bare: matches at any depth) or a record-relative path
	// ("Owner.Phone", "items.*.mobile") to its action. Matching is on decoded names,
	// case-insensitive.
	Fields map[string]Action
	// Rows are predicates every returned record must pass.
	Rows []RowRule
	// Detect names the content scanners to run on string values no field rule handled:
	// "phone", "id_card", "bank_card", "email".
	Detect []string
	// HashKey is the HMAC key for Hash. A plan with a Hash action and no key is an error.
	HashKey []byte
}

// Format is the body format of a response.
type Format int

// Body formats.
const (
	FormatJSON Format = iota // a JSON document
	FormatCSV                // RFC 4180 CSV with a header row
)

// Layout says where the records sit in a response and how their fields are named. The zero
// value is a JSON document with no recognised records: field rules and detectors still apply
// to the whole document, nothing is counted.
type Layout struct {
	Format Format

	// Records is the dotted key path ("data", "data.items") of the array of records in a JSON
	// response; "@this" when the whole document is one record; "" with HasRecords when the
	// document itself is the array of records. A "*" segment matches any key or array
	// element: "valueRanges.*.values" is every range's array of rows.
	Records string
	// HasRecords is set when the response carries records at Records. Unset for error
	// envelopes and write acknowledgements: nothing is counted, rules still apply.
	HasRecords bool

	// ID is the record-relative dotted path of a record's id ("id", "fields.CustomerID").
	ID string
	// Nested lists keys whose array values inside a record are records too (Salesforce
	// subquery "records"), counted and row-filtered like top-level ones.
	Nested []string

	// Columns names, by index, the elements of records that are JSON arrays (positional rows).
	Columns []string
	// ColumnsFromFirstRecord: the first element of the records array is a header row naming
	// the columns (Google Sheets values); it is kept as is and not counted.
	ColumnsFromFirstRecord bool
	// Aliases renames raw keys (decoded, case-insensitive) to the names policy uses, at any
	// depth: Jiandaoyun "_widget_1432728651402" -> "手机号".
	Aliases map[string]string

	// HeaderRow is the 1-based CSV row holding the column names (0 means 1).
	HeaderRow int

	// Opaque lists bare key names whose values are the upstream's own identifiers (Zoho's and
	// Kingdee's 19-digit record ids, some of which pass the Luhn check): they are kept as if
	// the plan said keep, so the detectors leave them alone. A rule of the plan for the same
	// name wins, being at least as restrictive. Inside JSON embedded in a string (text
	// someone wrote) the names are not opaque.
	Opaque []string

	// Structural lists keys that give the structure of a value, not its content (Lark's
	// text segments {"type": "text", "text": …}). Under an action inherited from an
	// enclosing value (a mask on the whole field), such a key's value is kept when it is a
	// lower-case identifier of at most 16 bytes ([a-z_]) or an integer of at most 3 digits,
	// which can carry no personal data; any other value, or a rule naming the key itself,
	// is handled as usual.
	Structural []string

	// Capture is a dotted path from the document root ("*" matching any key or array
	// element) of a string the adapter wants back in Stats.Captured: Salesforce's
	// "nextRecordsUrl", which names the next page of a query.
	Capture string

	// Status names the value in a JSON response that says whether the upstream succeeded,
	// for APIs that answer failures with HTTP 200 (Lark "code", Kingdee
	// "Result.ResponseStatus.IsSuccess"). Unset, every response is taken as a success.
	Status Status
}

// Status is a success marker. Path is a dotted path from the document root ("*" matching
// any key or array element); OK is the text the value has on success: a number or boolean
// literal as written ("0", "true") or a string's decoded text. A document in which some
// value at Path is not OK (a container there never is) failed: Stats.Failed is set and it
// counts no records, ids or removals. Its rules and detectors still apply.
type Status struct {
	Path string
	OK   string
}

// Limits bound the work one rewrite may do. Zero values take the defaults shown.
type Limits struct {
	MaxDepth       int   // JSON nesting depth, default 512; at most 10000 (Compile refuses more)
	MaxRecordBytes int64 // bytes of one record buffered at a time, default 16 MiB; it also bounds one token outside records and one CSV row
	MaxIDs         int   // record ids kept in Stats.IDs, default 1000
}

// Stats reports what a rewrite did. The maps are nil when they would be empty.
type Stats struct {
	Records int            // records returned (after row filtering), nested ones included
	Removed int            // records removed by row rules
	Fields  map[string]int // field name -> values masked, hashed, dropped, nulled or redacted
	Detects map[string]int // scanner name -> hits masked in free text
	IDs     []string       // ids of returned records, at most Limits.MaxIDs
	IDsCut  bool           // more ids were returned than IDs holds
	Failed  bool           // the document is a failure by Layout.Status (nothing counted)
	// Captured is the first string found at Layout.Capture, at most 4096 bytes (a longer
	// one is not captured); "" when none.
	Captured string
}
