//go:build unix

package policy_test

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/veilproxy/veil/proxy/policy"
)

// BenchmarkDecide measures one uncached decision of the shipped policy per role, on a
// request the role may make (the longest path through the policy), under containment,
// and for a deny. Besides ns/op (wall time) it reports the process CPU time per decision
// (cpu-ns/op, garbage collection included) and decisions/s per core derived from it,
// which stay meaningful on a machine shared with other work.
// Run: go test -run XXX -bench Decide ./proxy/policy/
func BenchmarkDecide(b *testing.B) {
	e := shipped(b)
	contained := request([]string{"cs_agent"}, "customers", "list")
	contained.User.Restricted = true
	cases := []struct {
		name string
		in   policy.Input
	}{
		{"cs_agent", request([]string{"cs_agent"}, "customers", "list")},
		{"host", request([]string{"host"}, "customers", "list")},
		{"contractor", request([]string{"contractor"}, "orders", "list")},
		{"ops_manager", request([]string{"ops_manager"}, "customers", "export")},
		{"security_admin", request([]string{"security_admin"}, "customers", "export")},
		{"restricted", contained},
		{"deny", request([]string{"contractor"}, "customers", "export")},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			if _, err := e.Decide(ctx, c.in); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			start := cpuTime(b)
			for b.Loop() {
				if _, err := e.Decide(ctx, c.in); err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuTime(b) - start
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(b.N)/cpu.Seconds(), "decisions/s/core")
		})
	}
}

// cpuTime is the CPU time (user and system) the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEngineOverhead measures Decide on a policy whose decision is a constant of the
// size of a cs_agent plan: building the input, evaluating, reading the decision. The
// difference to BenchmarkDecide is what the shipped policy's rules cost.
func BenchmarkEngineOverhead(b *testing.B) {
	dir := b.TempDir()
	writeTree(b, dir, decision(`{
	"allow": true,
	"fields": {"address": "mask:address", "bank_card": "mask:bank_card", "creditlimit": "mask:generic",
		"email": "mask:email", "id_card": "mask:id_card", "mobile": "mask:phone", "name": "mask:name",
		"national-id": "mask:id_card", "nationalid": "mask:id_card", "note": "mask", "phone": "mask:phone",
		"receiver": "mask:generic", "receiver_address": "mask:address", "receiver_name": "mask:name",
		"receiver_phone": "mask:phone", "taxid": "mask:id_card"},
	"rows": [],
	"detect": ["phone", "id_card", "bank_card", "email"],
	"limits": [
		{"name": "user-customers-hourly", "key": "user:alice", "window": "1h", "records": 2000},
		{"name": "dept-hourly", "key": "dept:cs", "window": "1h", "records": 20000},
	],
	"max_page_size": 500,
	"mode": "enforce",
}`))
	e, err := policy.New(context.Background(), policy.Options{FS: os.DirFS(dir)})
	if err != nil {
		b.Fatal(err)
	}
	in := request([]string{"cs_agent"}, "customers", "list")
	ctx := context.Background()
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		if _, err := e.Decide(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime(b) - start
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "decisions/s/core")
}
