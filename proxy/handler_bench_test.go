package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/veilproxy/veil/proxy/limit"
)

// benchList is the load benchmark's masked-list page: 100 records of 20 fields.
func benchList() []byte {
	var b strings.Builder
	b.WriteString(`{"data":[`)
	for i := range 100 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"C%07d","name":"王小明%d","mobile":"138%08d","id_card":"11010519900101%04d","email":"user%d@example.cn",`+
			`"address":"北京市朝阳区建国路%d号","bank_card":"6222020200%09d","owner_id":"host_lin","level":"VIP","tags":["直播间","美妆"],`+
			`"total_spent":%d.%02d,"created_at":"2026-11-20T20:15:00+08:00","status":"active","source":"douyin","city":"北京",`+
			`"orders_count":%d,"last_order_id":"O%08d","points":%d,"vip_until":"2027-11-20","note":"喜欢晚上直播下单，电话138%08d"}`,
			i, i, i, i%10000, i, i%300, i, i*37%100000, i%100, i%20, i, i*10, i+1)
	}
	b.WriteString(`],"total":4000}`)
	return []byte(b.String())
}

// BenchmarkHandler measures one request through the real handler (in process, no sockets on
// the client side) for the pass-through and masked-list routes of the load benchmark.
func BenchmarkHandler(b *testing.B) {
	body := benchList()
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	for _, c := range []struct{ name, user, roles string }{
		{"pass", "sam", "security_admin"},
		{"masked", "alice", "cs_agent"},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := newRig(b, rigOptions{Upstream: up, Budgets: unlimited{}})
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("GET", "/api/customers?pageSize=100", nil)
				req.RemoteAddr = "127.0.0.1:1234"
				req.Header.Set("X-Veil-User", c.user)
				req.Header.Set("X-Veil-Roles", c.roles)
				w := httptest.NewRecorder()
				r.Handler.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("status %d: %s", w.Code, w.Body.String())
				}
				io.Copy(io.Discard, w.Body)
			}
		})
	}
}

// unlimited is a budget store that always has room, so the benchmark measures the request path.
type unlimited struct{}

func (unlimited) Reserve(context.Context, []limit.Budget, int64) (limit.Reservation, []limit.Status, error) {
	return limit.Reservation{}, nil, nil
}

func (unlimited) Settle(context.Context, limit.Reservation, int64) ([]limit.Status, error) {
	return nil, nil
}
