package policy

import (
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Data returns the value at path in the data document of the policy in use, the way
// encoding/json decodes it with UseNumber (objects are map[string]any, arrays []any,
// numbers json.Number): Data("veil", "directory") is data.veil.directory. It returns nil
// when nothing is there. The value is a copy the caller may keep and change.
//
// Called from Options.OnReload with a nil error, it reads exactly the policy that was just
// loaded; that is how the staff directory and the revocation list follow every reload.
func (e *Engine) Data(path ...string) (any, error) {
	var v ast.Value = e.current.Load().data
	for _, key := range path {
		obj, ok := v.(ast.Object)
		if !ok {
			return nil, nil
		}
		t := obj.Get(ast.StringTerm(key))
		if t == nil {
			return nil, nil
		}
		v = t.Value
	}
	out, err := ast.JSON(v)
	if err != nil {
		return nil, fmt.Errorf("policy: data.%s: %w", strings.Join(path, "."), err)
	}
	return out, nil
}
