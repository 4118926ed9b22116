package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// listBody is the masked-list workload: 100 customer records of 20 fields, 6 of them personal
// data the cs_agent policy masks, plus a free-text note the detectors scan.
func listBody(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"data":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(record(i))
	}
	fmt.Fprintf(&b, `],"page":1,"page_size":%d,"total":%d}`, n, n*40)
	return []byte(b.String())
}

// record is one customer record of 20 fields.
func record(i int) string {
	return fmt.Sprintf(`{"id":"C%07d","name":"王小明%d","mobile":"138%08d","id_card":"11010519900101%04d","email":"user%d@example.cn",`+
		`"address":"北京市朝阳区建国路%d号","bank_card":"6222020200%09d","owner_id":"host_lin","level":"VIP","tags":["直播间","美妆"],`+
		`"total_spent":%d.%02d,"created_at":"2026-11-20T20:15:00+08:00","status":"active","source":"douyin","city":"北京",`+
		`"orders_count":%d,"last_order_id":"O%08d","points":%d,"vip_until":"2027-11-20","note":"喜欢晚上直播下单，电话138%08d"}`,
		i, i, i, i%10000, i, i%300, i, i*37%100000, i%100, i%20, i, i*10, i+1)
}

// upstream is the fake CRM: a fixed list page, and generated exports of any size.
func upstream() http.Handler {
	list := listBody(100)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/customers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(list)))
		w.Write(list)
	})
	mux.HandleFunc("GET /api/export.json", func(w http.ResponseWriter, r *http.Request) {
		mb, _ := strconv.Atoi(r.URL.Query().Get("mb"))
		w.Header().Set("Content-Type", "application/json")
		bw := bufio.NewWriterSize(w, 64<<10)
		bw.WriteString(`{"data":[`)
		for i, n := 0, 0; n < mb<<20; i++ {
			if i > 0 {
				bw.WriteByte(',')
			}
			rec := record(i)
			n += len(rec) + 1
			bw.WriteString(rec)
		}
		bw.WriteString(`]}`)
		bw.Flush()
	})
	mux.HandleFunc("GET /api/export.csv", func(w http.ResponseWriter, r *http.Request) {
		mb, _ := strconv.Atoi(r.URL.Query().Get("mb"))
		w.Header().Set("Content-Type", "text/csv")
		bw := bufio.NewWriterSize(w, 64<<10)
		written := 0
		h := "id,name,mobile,id_card,email,address,bank_card,owner_id,level,total_spent,note\n"
		bw.WriteString(h)
		for i := 0; written < mb<<20; i++ {
			line := fmt.Sprintf("C%07d,王小明%d,138%08d,11010519900101%04d,user%d@example.cn,北京市朝阳区建国路%d号,6222020200%09d,host_lin,VIP,%d.50,\"喜欢晚上直播下单, 电话138%08d\"\n",
				i, i, i, i%10000, i, i%300, i, i%5000, i+1)
			written += len(line)
			bw.WriteString(line)
		}
		bw.Flush()
	})
	return mux
}
