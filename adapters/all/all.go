// Package all maps the adapter names a route's `adapter:` key accepts to their constructors.
package all

import (
	"fmt"
	"net/http"
	"sort"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/adapters/generic"
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
	"generic": func(decode func(v any) error, _ Env) (adapters.Adapter, error) {
		var o generic.Options
		if err := decode(&o); err != nil {
			return nil, err
		}
		return generic.New(o)
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
