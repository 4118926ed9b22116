// Command veil is the data-policy proxy: serve, demo, check, explain, users and audit.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitError carries a process exit code: 1 for a problem found, 2 for bad usage.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, "veil:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "veil:", err)
	return 1
}

const usage = `Veil — a data-policy proxy for the systems your team already uses.

Usage:
  veil serve   -c veil.yaml                       run the proxy
  veil demo    [--proxy :8080] [--admin :9090] [--upstream :8081] [--script]
                                                  a sample CRM behind Veil, with curl lines to try
  veil check   -c veil.yaml                       validate config, compile policies, run policy tests
  veil explain -c veil.yaml --user U --roles R[,R] METHOD PATH
                                                  print the decision and field plan for a request
  veil users   [--admin URL] list | release USER | restrict USER --for 2h --reason R
                                                  export-spike containment (token in VEIL_ADMIN_TOKEN)
  veil audit verify FILE...                       check the audit hash chain
  veil audit who (--record ID | --user U) [--since 30d] FILE...
                                                  who read a record / what a user read
  veil version
`

// run is the one place that reads files and the environment and wires concrete types.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2, err: errors.New("")}
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "check":
		return cmdCheck(ctx, args[1:], stdout, stderr)
	case "explain":
		return cmdExplain(ctx, args[1:], stdout, stderr)
	case "audit":
		return cmdAudit(ctx, args[1:], stdout, stderr)
	case "users":
		return cmdUsers(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "veil", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError("unknown command %q", args[0])
}
