package proxy_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/veilproxy/veil/adapters/generic"
	"github.com/veilproxy/veil/proxy"
	"github.com/veilproxy/veil/proxy/policy"
)

func phoneOf(i int) string { return fmt.Sprintf("138%08d", i) }

// listUpstream writes n records of about 100 bytes, flushing as it goes. After half, it waits
// for proceed (when not nil). With badAt > 0 it writes garbage after that many records.
func listUpstream(n, badAt int, proceed <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		bw := bufio.NewWriter(w)
		bw.WriteString(`{"data":[`)
		for i := range n {
			if i > 0 {
				bw.WriteString(",")
			}
			if badAt > 0 && i == badAt {
				bw.WriteString(`{"id":"broken", "mobile": 13800000000 oops`)
				bw.Flush()
				return
			}
			fmt.Fprintf(bw, `{"id":"c%d","mobile":"%s","note":"padding padding padding padding padding"}`, i, phoneOf(i))
			if i == n/2 && proceed != nil {
				bw.Flush()
				w.(http.Flusher).Flush()
				<-proceed
			}
		}
		bw.WriteString(`],"total":` + fmt.Sprint(n) + `}`)
		bw.Flush()
	})
}

func streamRig(t *testing.T, up http.Handler) *rig {
	ad, err := generic.New(generic.Options{Resources: []generic.Resource{{Match: "/api/customers", Type: "customers", Records: str("data")}}})
	if err != nil {
		t.Fatal(err)
	}
	pol := fixedPolicy{policy.Decision{Allow: true, Fields: map[string]string{"mobile": "mask:phone"}, Detect: []string{"phone"}}}
	return newRig(t, rigOptions{Upstream: up, Adapter: ad, Policy: pol, Limits: proxy.Limits{StreamThreshold: 64 << 10, UpstreamIdleTimeout: 2 * time.Second}})
}

func TestStreamingSendsFirstBytesBeforeUpstreamFinishes(t *testing.T) {
	proceed := make(chan struct{})
	r := streamRig(t, listUpstream(20000, 0, proceed))
	req, _ := http.NewRequest("GET", r.Veil.URL+"/api/customers", nil)
	req.Header.Set("X-Veil-User", "u")
	req.Header.Set("X-Veil-Roles", "cs_agent")
	resp, err := r.Veil.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 4096)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("reading the first bytes while the upstream waits: %v", err)
	}
	close(proceed)
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the rest: %v", err)
	}
	body := append(first, rest...)
	if resp.ContentLength != -1 {
		t.Errorf("ContentLength = %d, want -1 (streamed)", resp.ContentLength)
	}
	if !strings.HasSuffix(string(body), `],"total":20000}`) {
		t.Fatalf("streamed body does not end with the envelope: ...%s", body[len(body)-40:])
	}
	for _, i := range []int{0, 1, 9999, 10001, 19999} {
		if strings.Contains(string(body), phoneOf(i)) {
			t.Fatalf("phone of record %d leaked", i)
		}
	}
	if got := strings.Count(string(body), `"mobile":"138****`); got != 20000 {
		t.Fatalf("masked phones = %d, want 20000", got)
	}
	recs := r.auditRecords()
	if len(recs) != 1 || recs[0].Records != 20000 || recs[0].Decision != "allow" {
		t.Fatalf("audit = %+v", recs)
	}
}

func TestStreamingAbortsOnABadBodyAfterFirstBytes(t *testing.T) {
	r := streamRig(t, listUpstream(20000, 15000, nil))
	req, _ := http.NewRequest("GET", r.Veil.URL+"/api/customers", nil)
	req.Header.Set("X-Veil-User", "u")
	req.Header.Set("X-Veil-Roles", "cs_agent")
	resp, err := r.Veil.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatalf("read a complete %d-byte body (status %d); want the connection aborted", len(body), resp.StatusCode)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "unexpected EOF") {
		t.Logf("client error: %v", err)
	}
	if strings.Contains(string(body), "13800000000") || strings.HasSuffix(string(body), "}") {
		t.Fatalf("the cut body leaks or looks complete: ...%s", body[max(0, len(body)-60):])
	}
	recs := r.auditRecords()
	if len(recs) != 1 || recs[0].Decision != "error" {
		t.Fatalf("audit = %+v, want one error record", recs)
	}
}

func TestSmallBadBodyIsACleanBadGateway(t *testing.T) {
	r := streamRig(t, listUpstream(50, 30, nil)) // chunked, but fails before the threshold
	resp, body := r.do("GET", "/api/customers", "u", "cs_agent", nil)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status = %d, want 502", resp.StatusCode)
	}
	if strings.Contains(string(body), "138") {
		t.Fatalf("502 body carries upstream data: %s", body)
	}
}

func TestUpstreamResetMidBody(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "100000")
		w.Write([]byte(`{"data":[{"id":"1","mobile":"13812345678"},`))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // reset the connection mid-body
	})
	r := streamRig(t, up)
	resp, body := r.do("GET", "/api/customers", "u", "cs_agent", nil)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status = %d, want 502", resp.StatusCode)
	}
	if strings.Contains(string(body), "13812345678") || strings.Contains(string(body), "138****5678") {
		t.Fatalf("half body reached the client: %s", body)
	}
}

func TestStalledUpstreamTimesOut(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"data":[`))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // stalls until Veil gives up and closes the connection
	})
	r := streamRig(t, up)
	start := time.Now()
	resp, _ := r.do("GET", "/api/customers", "u", "cs_agent", nil)
	if resp.StatusCode != http.StatusGatewayTimeout && resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status = %d, want 504 or 502", resp.StatusCode)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("stalled upstream held the request %v", d)
	}
	recs := r.auditRecords()
	if len(recs) != 1 || recs[0].Decision != "error" {
		t.Fatalf("audit = %+v, want an error record for the abort", recs)
	}
}
