package policy_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/veilproxy/veil/proxy/policy"
)

func TestTest(t *testing.T) {
	dir := tree(t, map[string]string{
		"veil/decision.rego": "package veil\n\ndecision := {\"allow\": input.user.id == \"alice\"}\n",
		"veil/decision_test.rego": `package veil_test

import data.veil

test_alice_allowed if veil.decision.allow with input as {"user": {"id": "alice"}}

test_bob_allowed if veil.decision.allow with input as {"user": {"id": "bob"}}

test_cases[name] if {
	some name, id in {"alice": "alice", "mallory": "mallory"}
	veil.decision.allow with input as {"user": {"id": id}}
}

test_errors if {
	x := to_number("not a number")
	x > 1
}

todo_test_later if false
`,
	})
	passed, failed, report, err := policy.Test(context.Background(), os.DirFS(dir))
	if err != nil {
		t.Fatalf("Test() error: %v", err)
	}
	if passed != 2 || failed != 3 {
		t.Errorf("Test() = %d passed, %d failed; want 2 passed (alice, cases/alice), 3 failed (bob, cases/mallory, errors):\n%s", passed, failed, report)
	}
	for _, want := range []string{"test_bob_allowed", "mallory", "test_errors", "FAIL"} {
		if !strings.Contains(report, want) {
			t.Errorf("Test() report does not mention %q:\n%s", want, report)
		}
	}
}

func TestTestRefusesBrokenTree(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"syntax error": {"veil/decision.rego": broken},
		"no decision":  {"veil/x_test.rego": "package veil_test\n\ntest_x if true\n"},
	} {
		t.Run(name, func(t *testing.T) {
			passed, failed, _, err := policy.Test(context.Background(), os.DirFS(tree(t, files)))
			if err == nil {
				t.Errorf("Test(%s) = %d passed, %d failed, nil; want an error", name, passed, failed)
			}
		})
	}
}
