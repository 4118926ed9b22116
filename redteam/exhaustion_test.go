package redteam

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veilproxy/veil/internal/veiltest"
	"github.com/veilproxy/veil/proxy"
	"github.com/veilproxy/veil/proxy/config"
	"github.com/veilproxy/veil/proxy/policy"
)

// listener applies to Veil's server the listener settings `veil serve` derives from a config
// (cmd/veil's servers), here from a minimal config plus the server: block given.
func listener(t *testing.T, server string) func(*http.Server) {
	t.Helper()
	y := "identity:\n  trusted_headers:\n    trusted_peers: [127.0.0.1/32]\n" +
		"routes:\n  - name: crm\n    path_prefix: /api/\n    upstream: http://127.0.0.1:1\n    adapter: generic\n" + server
	cfg, err := config.Parse("redteam.yaml", []byte(y))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	s := cfg.Server
	if s.ReadHeaderTimeout.D() <= 0 || s.MaxHeaderBytes <= 0 || s.ReadTimeout.D() <= 0 || s.IdleTimeout.D() <= 0 {
		t.Fatalf("config server defaults %+v: want every timeout and size limit set", s)
	}
	return func(srv *http.Server) {
		srv.ReadHeaderTimeout = s.ReadHeaderTimeout.D()
		srv.ReadTimeout = s.ReadTimeout.D()
		srv.WriteTimeout = s.WriteTimeout.D()
		srv.IdleTimeout = s.IdleTimeout.D()
		srv.MaxHeaderBytes = int(s.MaxHeaderBytes)
	}
}

// bodyOrAbort reads a response through Go's client: a 502, or a 200 whose body read fails
// (the stream was aborted), are both refusals. It returns the status and whether the body was
// cut off.
func bodyOrAbort(t *testing.T, e *env, roles, target string) (int, bool) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.Veil.URL+target, nil)
	req.Header.Set("X-Veil-User", "u1")
	req.Header.Set("X-Veil-Roles", roles)
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := e.Veil.Client().Do(req)
	if err != nil {
		return 0, true
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	noLeak(t, resp.Header, b)
	return resp.StatusCode, err != nil
}

// refusedOrAborted checks that a response was a 502/504 or a stream cut off before its end.
func refusedOrAborted(t *testing.T, code int, cut bool, want ...int) {
	t.Helper()
	if cut {
		return
	}
	status(t, "status", code, want...)
}

// case28 — decompression bombs: decoded bytes are capped, then 502.
func case28(t *testing.T) {
	doc := append(append([]byte(`{"data":[`), bytes.Repeat([]byte(" "), 16<<20)...), ']', '}')
	for _, tt := range []struct {
		name     string
		codings  []string
		streamed bool
	}{
		{"gzip_buffered", []string{"gzip"}, false},
		{"gzip_streamed", []string{"gzip"}, true},
		{"zstd", []string{"zstd"}, false},
		{"br", []string{"br"}, false},
		{"gzip_in_gzip", []string{"gzip", "gzip"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bomb := encode(t, doc, tt.codings...)
			var up http.Handler = serve(200, bomb, "Content-Type", "application/json", "Content-Encoding", strings.Join(tt.codings, ", "))
			if tt.streamed {
				up = trickle(bomb, 32<<10, "Content-Type", "application/json", "Content-Encoding", strings.Join(tt.codings, ", "))
			}
			e := newEnv(t, veiltest.Options{Upstream: up, Limits: proxy.Limits{MaxResponseBody: 1 << 20, MaxStreamBody: 2 << 20}})
			start := time.Now()
			code, cut := bodyOrAbort(t, e, "cs_agent", "/api/customers")
			refusedOrAborted(t, code, cut, http.StatusBadGateway)
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("bomb took %s", d)
			}
		})
	}
}

// case29 — a response bigger than the masking limit is an error, never the rest unmasked.
func case29(t *testing.T) {
	var big []customer
	for len(big)*300 < 200<<10 {
		big = append(big, planted...)
	}
	bigJSON := mustJSON(map[string]any{"data": big})
	t.Run("buffered_over_limit", func(t *testing.T) {
		// A known length under the stream threshold is rewritten whole: over the cap, it fails.
		e := newEnv(t, veiltest.Options{Upstream: serve(200, bigJSON, "Content-Type", "application/json", "Content-Length", fmt.Sprint(len(bigJSON))),
			Limits: proxy.Limits{MaxResponseBody: 64 << 10}})
		code, cut := bodyOrAbort(t, e, "cs_agent", "/api/customers")
		refusedOrAborted(t, code, cut, http.StatusBadGateway)
	})
	t.Run("streamed_past_limit", func(t *testing.T) {
		// An unknown length streams record by record: every record masked, or an error.
		e := newEnv(t, veiltest.Options{Upstream: trickle(bigJSON, 8<<10, "Content-Type", "application/json"),
			Limits: proxy.Limits{MaxResponseBody: 64 << 10}})
		code, cut := bodyOrAbort(t, e, "cs_agent", "/api/customers")
		refusedOrAborted(t, code, cut, http.StatusOK, http.StatusBadGateway)
	})
	huge := planted[0]
	huge.Note = strings.Repeat("x", 100<<10) + huge.Mobile
	for _, tt := range []struct {
		name string
		recs []customer
	}{
		{"record_too_large_first", append([]customer{huge}, big...)},
		{"record_too_large_later", append(append([]customer{}, big...), huge)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, veiltest.Options{Upstream: trickle(mustJSON(map[string]any{"data": tt.recs}), 8<<10, "Content-Type", "application/json"),
				Limits: proxy.Limits{MaxRecordBytes: 16 << 10, StreamThreshold: 4 << 10}})
			code, cut := bodyOrAbort(t, e, "cs_agent", "/api/customers")
			refusedOrAborted(t, code, cut, http.StatusBadGateway)
		})
	}
}

// case30 — slowloris: headers one byte at a time are cut off by the read-header timeout.
func case30(t *testing.T) {
	e := newEnv(t, veiltest.Options{Server: listener(t, "server:\n  read_header_timeout: 500ms\n  read_timeout: 1s\n")})
	t.Run("headers", func(t *testing.T) {
		c, err := net.Dial("tcp", e.Veil.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		io.WriteString(c, "GET /api/customers HTTP/1.1\r\nHost: veil.test\r\n")
		closed := false
		for time.Since(start) < 5*time.Second {
			if _, err := c.Write([]byte("X")); err != nil {
				closed = true
				break
			}
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			var b [512]byte
			if _, err := c.Read(b[:]); err != nil {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					closed = true
					break
				}
			}
		}
		if !closed {
			t.Errorf("connection still open after %s of one-byte headers", time.Since(start))
		} else if d := time.Since(start); d > 3*time.Second {
			t.Errorf("connection closed after %s, want about the 500ms read-header timeout", d)
		}
		e.nothingForwarded(t)
	})
	t.Run("body", func(t *testing.T) {
		c, err := net.Dial("tcp", e.Veil.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		io.WriteString(c, request("PATCH", "/api/customers/C10001", "Content-Type: application/json", "Content-Length: 100"))
		for time.Since(start) < 4*time.Second {
			if _, err := c.Write([]byte(" ")); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("slow body kept for %s, want the 1s read timeout", d)
		}
		e.nothingForwarded(t)
	})
}

// stall returns an upstream that runs first and then blocks until the test ends.
func stall(t *testing.T, first func(w http.ResponseWriter)) http.HandlerFunc {
	done := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(done) }) })
	return func(w http.ResponseWriter, r *http.Request) {
		if first != nil {
			first(w)
			http.NewResponseController(w).Flush()
		}
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}
}

// case31 — stalled upstreams: header timeout and body idle timeout, with an audit record.
func case31(t *testing.T) {
	lim := proxy.Limits{UpstreamHeaderTimeout: 300 * time.Millisecond, UpstreamIdleTimeout: 300 * time.Millisecond, StreamThreshold: 4 << 10}
	half := listJSON()[:len(listJSON())/2]
	var many []customer
	for len(many)*300 < 64<<10 {
		many = append(many, planted...)
	}
	for _, tt := range []struct {
		name  string
		first func(w http.ResponseWriter)
		want  int
	}{
		{"no_headers", nil, http.StatusGatewayTimeout},
		{"half_body", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", fmt.Sprint(2*len(half)))
			w.Write(half)
		}, http.StatusGatewayTimeout},
		{"streamed_then_stalled", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			b := mustJSON(map[string]any{"data": many})
			w.Write(b[:len(b)-100])
		}, http.StatusGatewayTimeout},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, veiltest.Options{Upstream: stall(t, tt.first), Limits: lim})
			start := time.Now()
			code, cut := bodyOrAbort(t, e, "cs_agent", "/api/customers")
			refusedOrAborted(t, code, cut, tt.want)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %s, want about the 300ms timeout", d)
			}
			var found bool
			for _, rec := range e.AuditRecords() {
				if rec.Decision == "error" && rec.Path == "/api/customers" {
					found = true
				}
			}
			if !found {
				t.Errorf("no audit record with decision error for the stalled request")
			}
		})
	}
}

// case32 — header and body size limits.
func case32(t *testing.T) {
	e := newEnv(t, veiltest.Options{Server: listener(t, ""), Limits: proxy.Limits{MaxRequestBody: 64 << 10}, Policy: methodPolicy{}})
	for _, tt := range []struct{ name, payload string }{
		{"one_100k_header", request("GET", "/api/customers", "X-Big: "+strings.Repeat("a", 100<<10))},
		{"many_headers", request("GET", "/api/customers", strings.Repeat("X-Many: "+strings.Repeat("b", 50)+"\r\n", 2000)+"X-End: 1")},
		{"100k_query", request("GET", "/api/customers?q="+strings.Repeat("c", 100<<10))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rs := e.raw(t, tt.payload, quiet)
			if len(rs) > 0 {
				status(t, "status", rs[0].Status, http.StatusRequestHeaderFieldsTooLarge, http.StatusRequestURITooLong, http.StatusBadRequest)
			}
			e.nothingForwarded(t)
		})
	}
	t.Run("declared_1gb_body", func(t *testing.T) {
		start := time.Now()
		rs := e.raw(t, request("PATCH", "/api/customers/C10001", "Content-Type: application/json", "Content-Length: 1073741824"), quiet)
		e.refused(t, rs, http.StatusRequestEntityTooLarge)
		if d := time.Since(start); d > quiet {
			t.Errorf("413 took %s", d)
		}
	})
	t.Run("endless_chunked_body", func(t *testing.T) {
		chunk := fmt.Sprintf("%x\r\n%s\r\n", 8<<10, strings.Repeat("d", 8<<10))
		rs := e.raw(t, request("PATCH", "/api/customers/C10001", "Content-Type: application/json", "Transfer-Encoding: chunked")+strings.Repeat(chunk, 16), quiet)
		e.refused(t, rs, http.StatusRequestEntityTooLarge)
	})
}

// case33 — budgets count records; page size is capped by policy.
func case33(t *testing.T) {
	t.Run("page_size_capped", func(t *testing.T) {
		e := newEnv(t, veiltest.Options{})
		resp, _ := e.as(t, "cs_agent", "GET", "/api/customers?pageSize=100000", nil)
		status(t, "status", resp.StatusCode, http.StatusOK)
		up := e.sameRequest(t)
		if got := up.RawQuery; got != "pageSize=500" {
			t.Errorf("upstream query %q, want pageSize=500 (cs_agent's max_page_size)", got)
		}
	})
	budget := policy.Decision{Allow: true, Fields: maskAll.Fields, Detect: maskAll.Detect,
		Limits: []policy.Limit{{Name: "user-customers-hourly", Key: "user:u1", Window: time.Hour, Records: 5}}}
	t.Run("small_pages", func(t *testing.T) {
		e := newEnv(t, veiltest.Options{Policy: fixedPolicy{budget}})
		var codes []int
		for range 4 {
			resp, _ := e.as(t, "cs_agent", "GET", "/api/customers?pageSize=2", nil)
			codes = append(codes, resp.StatusCode)
			if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After")
			}
		}
		if fmt.Sprint(codes) != "[200 200 429 429]" {
			t.Errorf("statuses %v, want [200 200 429 429]: 5 records allow two pages of 2", codes)
		}
	})
	t.Run("page_size_unknown", func(t *testing.T) {
		e := newEnv(t, veiltest.Options{Policy: fixedPolicy{budget}})
		var codes []int
		for range 4 {
			resp, _ := e.as(t, "cs_agent", "GET", "/api/customers", nil)
			codes = append(codes, resp.StatusCode)
		}
		if fmt.Sprint(codes) != "[200 200 429 429]" {
			t.Errorf("statuses %v, want [200 200 429 429]: records returned (3 a page) are charged", codes)
		}
	})
	for _, q := range []string{"pageSize=-1", "pageSize=1e3", "pageSize=0x10", "pageSize=10%20"} {
		t.Run("bad_"+q, func(t *testing.T) {
			e := newEnv(t, veiltest.Options{})
			resp, _ := e.as(t, "cs_agent", "GET", "/api/customers?"+q, nil)
			status(t, "status", resp.StatusCode, http.StatusBadRequest)
			e.nothingForwarded(t)
		})
	}
}
