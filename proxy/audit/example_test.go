package audit_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/veilproxy/veil/proxy/audit"
)

func Example() {
	dir, err := os.MkdirTemp("", "veil-audit-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "veil-audit.jsonl")
	ctx := context.Background()

	log, err := audit.Open(audit.Options{Path: path})
	if err != nil {
		panic(err)
	}
	// An export: durable before its body is released.
	if err := log.AppendSync(ctx, &audit.Record{User: "alice", Action: "export", Export: true,
		Decision: audit.DecisionAllow, Records: 2, IDs: []string{"10086", "10087"}}); err != nil {
		panic(err)
	}
	// A read: queued, written with the next batch.
	if err := log.Append(&audit.Record{User: "bob", Action: "read", Decision: audit.DecisionAllow,
		Records: 1, IDs: []string{"10086"}}); err != nil {
		panic(err)
	}
	if err := log.Close(); err != nil {
		panic(err)
	}

	files, err := audit.Files(path)
	if err != nil {
		panic(err)
	}
	res, err := audit.Verify(ctx, files)
	if err != nil {
		panic(err)
	}
	fmt.Println("chain intact:", res.OK, "lines:", res.Lines)

	err = audit.Who(ctx, files, audit.Query{Record: "10086"}, func(m audit.Match) error {
		fmt.Printf("line %d: %s %s\n", m.Line, m.Record.User, m.Record.Action)
		return nil
	})
	if err != nil {
		panic(err)
	}
	// Output:
	// chain intact: true lines: 2
	// line 1: alice export
	// line 2: bob read
}
