package policies_test

import (
	"context"
	"testing"

	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy/policy"
)

// TestRego runs every Rego test of the shipped policy; any failing one fails go test.
func TestRego(t *testing.T) {
	passed, failed, report, err := policy.Test(context.Background(), policies.FS)
	if err != nil {
		t.Fatalf("policy.Test(policies.FS) error: %v", err)
	}
	if failed > 0 || passed == 0 {
		t.Errorf("policy.Test(policies.FS) = %d passed, %d failed, want all passed:\n%s", passed, failed, report)
	}
	t.Logf("%d Rego tests passed", passed)
}
