package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"
)

const usersUsage = "usage: veil users [--admin URL] [--as NAME] (list | release USER | restrict USER --for 2h --reason R)"

// cmdUsers lists, lifts and sets export-spike restrictions through the admin API. The bearer
// token comes from VEIL_ADMIN_TOKEN, never from a flag (it would show in ps).
func cmdUsers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return usersCommand(ctx, args, stdout, stderr, os.Getenv)
}

func usersCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newFlags("users", stderr)
	admin := fs.String("admin", "http://127.0.0.1:9090", "Veil's admin listener")
	as := fs.String("as", "", "the admin's name, recorded in the audit log; default: the login name")
	fs.String("c", "", "config file (unused: the admin listener is given by --admin)")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usageError(usersUsage)
	}
	token := getenv(defaultAdminTokenEnv)
	if token == "" {
		return usageError("users: set %s to the admin API's bearer token", defaultAdminTokenEnv)
	}
	by := *as
	if by == "" {
		if u, err := user.Current(); err == nil {
			by = u.Username
		}
	}
	if by == "" {
		return usageError("users: --as is required (the login name is unknown)")
	}
	base, err := url.Parse(strings.TrimRight(*admin, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return usageError("users: --admin %q: want an http or https URL", *admin)
	}
	c := &adminClient{base: base.String() + "/admin/restrictions", token: token, by: by,
		http: &http.Client{Timeout: 15 * time.Second}}

	switch rest[0] {
	case "list":
		if len(rest) != 1 {
			return usageError(usersUsage)
		}
		var list []struct {
			User   string    `json:"user"`
			Until  time.Time `json:"until"`
			Since  time.Time `json:"since"`
			Reason string    `json:"reason"`
			By     string    `json:"by"`
		}
		if err := c.do(ctx, http.MethodGet, "", nil, &list); err != nil {
			return err
		}
		if len(list) == 0 {
			fmt.Fprintln(stdout, "no user is restricted")
			return nil
		}
		fmt.Fprintf(stdout, "%-24s %-25s %-25s %-16s %s\n", "USER", "UNTIL", "SINCE", "BY", "REASON")
		for _, r := range list {
			fmt.Fprintf(stdout, "%-24s %-25s %-25s %-16s %s\n", r.User, r.Until.Format(time.RFC3339), r.Since.Format(time.RFC3339), r.By, r.Reason)
		}
		return nil
	case "release":
		if len(rest) != 2 || rest[1] == "" {
			return usageError("usage: veil users release USER")
		}
		if err := c.do(ctx, http.MethodDelete, rest[1], nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s released\n", rest[1])
		return nil
	case "restrict":
		rfs := newFlags("users restrict", stderr)
		dur := rfs.String("for", "", "how long, e.g. 2h or 1d")
		reason := rfs.String("reason", "", "why, for the audit log and the user list")
		if len(rest) < 2 || strings.HasPrefix(rest[1], "-") {
			return usageError("usage: veil users restrict USER --for 2h --reason R")
		}
		if err := rfs.Parse(rest[2:]); err != nil {
			return &exitError{code: 2, err: err}
		}
		if *dur == "" || *reason == "" || rfs.NArg() != 0 {
			return usageError("usage: veil users restrict USER --for 2h --reason R")
		}
		var out struct {
			Until time.Time `json:"until"`
		}
		if err := c.do(ctx, http.MethodPut, rest[1], map[string]string{"for": *dur, "reason": *reason}, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s restricted until %s\n", rest[1], out.Until.Format(time.RFC3339))
		return nil
	}
	return usageError(usersUsage)
}

// adminClient calls the containment admin API.
type adminClient struct {
	base, token, by string
	http            *http.Client
}

// do sends one request; user "" addresses the list. A non-2xx answer is an error carrying the
// API's message.
func (c *adminClient) do(ctx context.Context, method, user string, body, out any) error {
	target := c.base
	if user != "" {
		target += "/" + url.PathEscape(user)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("users: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("X-Veil-Admin", c.by)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("users: read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("users: %s %s: %d %s", method, target, resp.StatusCode, e.Error)
		}
		return fmt.Errorf("users: %s %s: %s", method, target, resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("users: decode answer: %w", err)
		}
	}
	return nil
}
