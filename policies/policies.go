// Package policies embeds Veil's shipped Rego policy, its data (roles, budgets, field
// classification) and its Rego tests.
package policies

import (
	"embed"
	"io/fs"
)

//go:embed veil
var tree embed.FS

// FS is the shipped policy tree, laid out as the policies directory is on disk: veil/*.rego
// and veil/data.json at its root. Pass it as policy.Options.FS when no policy directory is
// configured, or copy it out as the starting point of one.
var FS fs.FS = tree
