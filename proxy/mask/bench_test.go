package mask

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// benchFields are the fields the benchmark masks in every record; address is an object.
var benchFields = map[string]string{
	"name": "name", "phone": "phone", "email": "email", "id_card": "id_card",
	"bank_card": "bank_card", "address": "address",
}

// listResponse generates a CRM list response of about size bytes: {"code":0,"data":[...]}
// with records of 20 fields, one of them (address) an object, some free text carrying phone
// numbers for the detectors.
func listResponse(size int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	b.WriteString(`{"code":0,"msg":"ok","total":100000,"data":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"%s","phone":"13%09d","email":"user%d@example.com",`+
			`"id_card":"11010519900101%04d","bank_card":"622202020011%07d",`+
			`"address":{"province":"北京市","city":"北京市","street":"朝阳区建国路%d号","zip":"100022"},`+
			`"gender":"%s","age":%d,"level":"VIP%d","created_at":"2024-11-03T08:15:27Z",`+
			`"updated_at":"2024-11-04T10:00:00Z","orders":%d,"total":%d.%02d,"tags":["live","repeat"],`+
			`"owner_id":"agent%d","status":"active","source":"douyin","verified":%t,`+
			`"remark":"客户要求周末送货，备用电话 139%08d，地址见上"}`,
			i, []string{"张三丰", "欧阳娜娜", "Maria Anders", "李娜"}[i%4], r.IntN(1e9), i, r.IntN(1e4), r.IntN(1e7),
			r.IntN(200), []string{"male", "female"}[i%2], 18+r.IntN(60), r.IntN(9),
			r.IntN(100), r.IntN(100000), r.IntN(100), r.IntN(20), i%3 == 0, r.IntN(1e8))
	}
	b.WriteString(`],"page":{"size":2000,"next":"/api/customers?page=2"}}`)
	return b.Bytes()
}

func benchProgram(b *testing.B) *Program {
	fields := map[string]Action{}
	for k, f := range benchFields {
		fields[k] = Action{Kind: Mask, Format: f}
	}
	p, err := Compile(Plan{Fields: fields, Detect: []string{"phone", "id_card", "bank_card", "email"}},
		Layout{Records: "data", HasRecords: true, ID: "id"}, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// maskAny masks every leaf of v in format, the way the engine treats an object value.
func maskAny(v any, format string) any {
	switch v := v.(type) {
	case string:
		return MaskValue(format, v)
	case map[string]any:
		for k, e := range v {
			v[k] = maskAny(e, "generic")
		}
	}
	return v
}

func BenchmarkRewrite1MB(b *testing.B) {
	doc := listResponse(1 << 20)
	b.Run("veil", func(b *testing.B) {
		p := benchProgram(b)
		b.SetBytes(int64(len(doc)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Rewrite(io.Discard, bytes.NewReader(doc)); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The pass-through case: nothing to mask, records counted and their ids kept; "walk"
	// turns off skipping what nothing reaches; json.Valid is the floor for validating alone.
	count := mustCompile(b, Plan{}, Layout{Records: "data", HasRecords: true, ID: "id"}, Limits{})
	walk := *count
	walk.skip = false
	for _, c := range []struct {
		name string
		p    *Program
	}{{"count_only", count}, {"count_only_walk", &walk}, {"skip_all", mustCompile(b, Plan{}, Layout{}, Limits{})}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.p.Rewrite(io.Discard, bytes.NewReader(doc)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("json_valid", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if !json.Valid(doc) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		b.ReportAllocs()
		for b.Loop() {
			var v map[string]any
			if err := json.Unmarshal(doc, &v); err != nil {
				b.Fatal(err)
			}
			for _, rec := range v["data"].([]any) {
				m := rec.(map[string]any)
				for k, f := range benchFields {
					if e, ok := m[k]; ok {
						m[k] = maskAny(e, f)
					}
				}
			}
			if _, err := json.Marshal(v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sjson_per_field", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		b.ReportAllocs()
		for b.Loop() {
			out := bytes.Clone(doc)
			n := int(gjson.GetBytes(out, "data.#").Int())
			for i := range n {
				prefix := "data." + strconv.Itoa(i) + "."
				for k, f := range benchFields {
					v := gjson.GetBytes(out, prefix+k)
					var err error
					if v.IsObject() {
						v.ForEach(func(key, leaf gjson.Result) bool {
							out, err = sjson.SetBytes(out, prefix+k+"."+key.String(), MaskValue("generic", leaf.String()))
							return err == nil
						})
					} else {
						out, err = sjson.SetBytes(out, prefix+k, MaskValue(f, v.String()))
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	})
}
