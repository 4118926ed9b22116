package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/config"
)

func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("usage: veil audit verify FILE... | veil audit who (--record ID | --user U) [--since 30d] FILE...")
	}
	switch args[0] {
	case "verify":
		return auditVerify(ctx, args[1:], stdout, stderr)
	case "who":
		return auditWho(ctx, args[1:], stdout, stderr)
	}
	return usageError("unknown audit command %q (verify, who)", args[0])
}

// expandFiles turns each named active log into its rotated files plus itself, in chain order.
func expandFiles(names []string) ([]string, error) {
	var files []string
	for _, n := range names {
		fs, err := audit.Files(n)
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
	}
	return files, nil
}

func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit verify", stderr)
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() == 0 {
		return usageError("usage: veil audit verify FILE...")
	}
	// Each FILE is one replica's active log: its chain (rotated files first) is checked on
	// its own.
	broken := 0
	for _, name := range fs.Args() {
		files, err := audit.Files(name)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		res, err := audit.Verify(ctx, files)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		if !res.OK {
			broken++
			fmt.Fprintf(stdout, "BROKEN %s:%d: %s\n", res.File, res.Line, res.Reason)
			continue
		}
		fmt.Fprintf(stdout, "OK %s: %d lines in %d files, chain intact; head %s\n", name, res.Lines, len(files), res.Head)
	}
	if broken > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d audit chains broken", broken, fs.NArg())}
	}
	return nil
}

func auditWho(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit who", stderr)
	record := fs.String("record", "", "record id: who read it")
	user := fs.String("user", "", "user id: what they read")
	since := fs.String("since", "", "only accesses this recent (e.g. 30d, 12h)")
	asJSON := fs.Bool("json", false, "print matching audit records as JSON lines")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	if (*record == "") == (*user == "") || fs.NArg() == 0 {
		return usageError("usage: veil audit who (--record ID | --user U) [--since 30d] FILE...")
	}
	q := audit.Query{Record: *record, User: *user}
	if *since != "" {
		d, err := config.ParseDuration(*since)
		if err != nil {
			return usageError("--since: %v", err)
		}
		q.Since = time.Now().Add(-d)
	}
	files, err := expandFiles(fs.Args())
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	n := 0
	err = audit.Who(ctx, files, q, func(m audit.Match) error {
		n++
		r := m.Record
		if *asJSON {
			_, err := fmt.Fprintf(stdout, "%s\n", m.Raw) // the line exactly as chained
			return err
		}
		_, err := fmt.Fprintf(stdout, "%s  %-12s %-8s %-7s %-6s %s %s records=%d roles=%s trace=%s\n",
			r.Time.UTC().Format(time.RFC3339), r.User, r.Decision, r.Action, r.Method, r.Route, r.Path,
			r.Records, strings.Join(r.Roles, ","), r.TraceID)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%d matching accesses\n", n)
	return nil
}
