// Package all maps the adapter names a route's `adapter:` key accepts to their constructors.
package all

import (
	"fmt"
	"net/http"
	"sort"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/adapters/airtable"
	"github.com/veilproxy/veil/adapters/generic"
	"github.com/veilproxy/veil/adapters/jiandaoyun"
	"github.com/veilproxy/veil/adapters/kingdee"
	"github.com/veilproxy/veil/adapters/lark"
	"github.com/veilproxy/veil/adapters/nocodb"
	"github.com/veilproxy/veil/adapters/salesforce"
	"github.com/veilproxy/veil/adapters/sheets"
	"github.com/veilproxy/veil/adapters/zoho"
)

// Env is what an adapter may need from its route besides its options.
type Env struct {
	// Upstream is the route's upstream base URL (adapters that call the upstream themselves,
	// e.g. to list a form's widgets, use it with Client).
	Upstream string
	// Client calls the upstream; nil = http.DefaultClient is never used, adapters must not call out.
	Client *http.Client
}

// Factory builds an adapter from its options; decode fills a typed options struct and reports
// unknown keys with their lines.
type Factory func(decode func(v any) error, env Env) (adapters.Adapter, error)

// Factories is the registry: one line per system.
var Factories = map[string]Factory{
	"jiandaoyun": func(decode func(v any) error, env Env) (adapters.Adapter, error) {
		var o jiandaoyun.Options
		if err := decode(&o); err != nil {
			return nil, err
		}
		return jiandaoyun.New(o, env.Upstream, env.Client)
	},
	"salesforce": func(decode func(v any) error, _ Env) (adapters.Adapter, error) {
		var o salesforce.Options
		if err := decode(&o); err != nil {
			return nil, err
		}
		return salesforce.New(o)
	},
	"zoho": func(decode func(v any) error, _ Env) (adapters.Adapter, error) {
		var o zoho.Options
		if err := decode(&o); err != nil {
			return nil, err
		}
		return zoho.New(o)
	},
	"kingdee": func(decode func(v any) error, _ Env) (adapters.Adapter, error) {
		var o kingdee.Options
		if err := decode(&o); err != nil {
			return nil, err
		}
		return kingdee.New(o)
	},
	"generic": func(decode func(v any) error, _ Env) (adapters.Adapter, error) {
		var o generic.Options
		if err := decode(&o); err != nil {
			return nil, err
		}
		return generic.New(o)
	},
	"sheets": func(decode func(v any) error, _ Env) (adapters.Adapter, error) {
		var o sheets.Options
		if err := decode(&o); err != nil {
			return nil, err
		}
		return sheets.New(o)
	},
	"airtable": func(decode func(v any) error, _ Env) (adapters.Adapter, error) {
		var o airtable.Options
		if err := decode(&o); err != nil {
			return nil, err
		}
		return airtable.New(o)
	},
	"lark": func(decode func(v any) error, _ Env) (adapters.Adapter, error) {
		var o lark.Options
		if err := decode(&o); err != nil {
			return nil, err
		}
		return lark.New(o)
	},
	"nocodb": func(decode func(v any) error, _ Env) (adapters.Adapter, error) {
		var o nocodb.Options
		if err := decode(&o); err != nil {
			return nil, err
		}
		return nocodb.New(o)
	},
}

// New builds the named adapter.
func New(name string, decode func(v any) error, env Env) (adapters.Adapter, error) {
	f, ok := Factories[name]
	if !ok {
		return nil, fmt.Errorf("unknown adapter %q (known: %v)", name, Names())
	}
	return f(decode, env)
}

// Names lists the registered adapters, sorted.
func Names() []string {
	names := make([]string, 0, len(Factories))
	for n := range Factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
