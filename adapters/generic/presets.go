package generic

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Presets are the API conventions a resource's `preset` key names. Each sets defaults that
// keys written in the resource override:
//
//   - "odata-v4": records at "value", page size "$top" (and the 4.01 form "top" is refused,
//     so a client cannot send a second page size the cap does not see); Name(key) after the
//     collection's last segment reads one entity, the document itself.
//   - "odata-v2": records at "d.results", page size "$top"; Name(key) reads one entity,
//     {"d": {...}}, whose id is looked up under "d".
//   - "jsonapi": records at "data", page size "page[size]"; a single resource
//     ({"data": {...}}) has its id under "data"; "included" resources are masked as part of
//     the envelope and not counted; the fields a write names are the keys of data.attributes
//     and data.relationships.
//   - "hal": records at "_embedded.<rel>", rel being the pattern's last literal segment
//     (set records for another rel); HAL has no page-size convention (Spring Data REST uses
//     "size": set page_size_param).
var Presets = []string{"odata-v4", "odata-v2", "jsonapi", "hal"}

// applyPreset fills the defaults of c's preset.
func (c *compiled) applyPreset() error {
	collection := c.idSeg < 0
	records := func(p string) {
		if c.Records == nil && collection {
			c.Records = &p
		}
	}
	pageSize := func(p string) {
		if c.PageSizeParam == "" {
			c.PageSizeParam = p
		}
	}
	switch c.Preset {
	case "":
		return nil
	case "odata-v4":
		records("value")
		pageSize("$top")
		if c.PageSizeParam == "$top" {
			c.refused = []string{"top"}
		}
	case "odata-v2":
		records("d.results")
		pageSize("$top")
		c.oneID = "d." + c.ID
	case "jsonapi":
		records("data")
		pageSize("page[size]")
		c.oneID = "data." + c.ID
		c.jsonAPI = true
	case "hal":
		if c.Records == nil && collection {
			if len(c.segs) == 0 {
				return errors.New(`hal: the pattern has no segment to name the rel; set records: "_embedded.<rel>"`)
			}
			rel := c.segs[len(c.segs)-1]
			if strings.HasPrefix(rel, "{") || !validRecordsPath("_embedded."+rel) || strings.Contains(rel, ".") {
				return fmt.Errorf(`hal: the pattern's last segment %q cannot name the rel; set records: "_embedded.<rel>"`, rel)
			}
			records("_embedded." + rel)
		}
	default:
		return fmt.Errorf("%q is not one of %s", c.Preset, strings.Join(Presets, ", "))
	}
	if strings.HasPrefix(c.Preset, "odata-") && collection && len(c.segs) > 0 && !strings.HasPrefix(c.segs[len(c.segs)-1], "{") {
		e := *c
		e.entity, e.Records, e.one = nil, nil, true
		c.entity = &e
	}
	return nil
}

// single reports whether a request matched by c addresses one record.
func (c *compiled) single() bool { return c.idSeg >= 0 || c.one }

// odataKey returns the key of an OData entity segment, Name(key), for the collection name.
// A quoted string key is unquoted, two single quotes inside standing for one; other keys
// (numbers, compound keys a=1,b=2) are returned as written.
func odataKey(seg, name string) (string, bool) {
	if strings.HasPrefix(name, "{") || !strings.HasPrefix(seg, name+"(") || !strings.HasSuffix(seg, ")") {
		return "", false
	}
	key := seg[len(name)+1 : len(seg)-1]
	if len(key) >= 2 && key[0] == '\'' && key[len(key)-1] == '\'' && !strings.Contains(key, ",") {
		key = strings.ReplaceAll(key[1:len(key)-1], "''", "'")
	}
	return key, key != ""
}

// jsonAPIFields lists the attributes and relationships a JSON:API write document names, so
// policy sees the fields a write touches rather than "data".
func jsonAPIFields(body []byte) []string {
	type resource struct {
		Attributes    map[string]json.RawMessage `json:"attributes"`
		Relationships map[string]json.RawMessage `json:"relationships"`
	}
	var doc struct {
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(body, &doc) != nil || len(doc.Data) == 0 {
		return nil
	}
	var many []resource
	if doc.Data[0] == '[' {
		if json.Unmarshal(doc.Data, &many) != nil {
			return nil
		}
	} else {
		var one resource
		if json.Unmarshal(doc.Data, &one) != nil {
			return nil
		}
		many = []resource{one}
	}
	seen := map[string]bool{}
	var fields []string
	for _, r := range many {
		for _, m := range []map[string]json.RawMessage{r.Attributes, r.Relationships} {
			for k := range m {
				if !seen[k] {
					seen[k] = true
					fields = append(fields, k)
				}
			}
		}
	}
	sort.Strings(fields)
	return fields
}
