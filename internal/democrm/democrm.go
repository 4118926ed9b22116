// Package democrm is the sample live-commerce CRM that `veil demo` and the tests put behind
// Veil: generated customers, orders and chat logs full of personal data, served as JSON and CSV.
package democrm

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Hosts are the live-stream hosts (主播) who own customers.
var Hosts = []string{"host_lin", "host_zhao", "host_wu"}

// Customer is one generated customer.
type Customer struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Mobile     string    `json:"mobile"`
	IDCard     string    `json:"id_card"`
	Email      string    `json:"email"`
	Address    string    `json:"address"`
	BankCard   string    `json:"bank_card"`
	OwnerID    string    `json:"owner_id"`
	Level      string    `json:"level"`
	Tags       []string  `json:"tags"`
	TotalSpent float64   `json:"total_spent"`
	CreatedAt  string    `json:"created_at"`
	Note       string    `json:"note"`
	ChatLog    []Chat    `json:"chat_log"`
	Orders     []OrderIn `json:"orders"`
}

// Chat is one message of a customer's chat with the shop.
type Chat struct {
	At   string `json:"at"`
	From string `json:"from"`
	Text string `json:"text"`
}

// OrderIn is an order as embedded in a customer.
type OrderIn struct {
	OrderID  string   `json:"order_id"`
	Amount   float64  `json:"amount"`
	Status   string   `json:"status"`
	Receiver Receiver `json:"receiver"`
}

// Receiver is an order's delivery contact.
type Receiver struct {
	Name    string `json:"name"`
	Phone   string `json:"phone"`
	Address string `json:"address"`
}

// Order is an order as served by /api/orders.
type Order struct {
	OrderID    string   `json:"order_id"`
	CustomerID string   `json:"customer_id"`
	OwnerID    string   `json:"owner_id"`
	Status     string   `json:"status"`
	Amount     float64  `json:"amount"`
	Items      []string `json:"items"`
	Receiver   Receiver `json:"receiver"`
	TrackingNo string   `json:"tracking_no"`
	CreatedAt  string   `json:"created_at"`
}

// Product is a public catalogue entry.
type Product struct {
	ID    string  `json:"id"`
	Name  string  `json:"name"`
	Price float64 `json:"price"`
	Stock int     `json:"stock"`
}

// CRM is the in-memory sample upstream.
type CRM struct {
	mu        sync.RWMutex
	customers []Customer
	byID      map[string]int
	orders    []Order
	products  []Product
}

var (
	surnames   = []string{"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "欧阳", "司马"}
	givenChars = []string{"伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀兰", "霞", "婷", "雪", "晨", "欣怡"}
	cities     = []struct{ prefix, areaCode string }{
		{"北京市朝阳区", "110105"}, {"上海市浦东新区", "310115"}, {"广东省广州市天河区", "440106"},
		{"浙江省杭州市西湖区", "330106"}, {"四川省成都市武侯区", "510107"}, {"江苏省南京市鼓楼区", "320106"},
	}
	streets  = []string{"建国路", "世纪大道", "天河北路", "文三路", "人民南路", "中山北路"}
	products = []string{"玻尿酸精华", "羊绒围巾", "蓝牙耳机", "有机大米", "防晒霜", "保温杯", "瑜伽垫", "茶叶礼盒"}
	statuses = []string{"paid", "shipped", "delivered", "refunded"}
)

// New generates n customers (and their orders) from seed; the same seed gives the same data.
func New(n int, seed uint64) *CRM {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	c := &CRM{byID: make(map[string]int, n)}
	for i := range n {
		cu := genCustomer(rng, i)
		c.byID[cu.ID] = len(c.customers)
		c.customers = append(c.customers, cu)
		for _, o := range cu.Orders {
			c.orders = append(c.orders, Order{
				OrderID: o.OrderID, CustomerID: cu.ID, OwnerID: cu.OwnerID, Status: o.Status, Amount: o.Amount,
				Items: []string{products[rng.IntN(len(products))]}, Receiver: o.Receiver,
				TrackingNo: fmt.Sprintf("SF%012d", rng.Int64N(1e12)), CreatedAt: cu.CreatedAt,
			})
		}
	}
	for i, p := range products {
		c.products = append(c.products, Product{ID: fmt.Sprintf("P%03d", i+1), Name: p, Price: float64(19+i*30) + 0.9, Stock: 100 + i*7})
	}
	return c
}

func genName(rng *rand.Rand) string {
	return surnames[rng.IntN(len(surnames))] + givenChars[rng.IntN(len(givenChars))]
}

// Mobile returns a mainland mobile number.
func genMobile(rng *rand.Rand) string {
	prefixes := []string{"138", "139", "137", "150", "186", "188", "177", "199"}
	return fmt.Sprintf("%s%08d", prefixes[rng.IntN(len(prefixes))], rng.IntN(1e8))
}

// genIDCard returns an 18-digit resident ID with a valid GB 11643 check digit.
func genIDCard(rng *rand.Rand, area string) string {
	body := fmt.Sprintf("%s%04d%02d%02d%03d", area, 1960+rng.IntN(45), 1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(1000))
	return body + string(IDCheckDigit(body))
}

// IDCheckDigit computes the GB 11643-1999 check character of a 17-digit ID body.
func IDCheckDigit(body17 string) byte {
	weights := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i := range 17 {
		sum += int(body17[i]-'0') * weights[i]
	}
	return "10X98765432"[sum%11]
}

// genBankCard returns a 16- or 19-digit card number that passes the Luhn check.
func genBankCard(rng *rand.Rand) string {
	bins := []string{"622202", "621700", "622848", "622588", "623668"}
	length := 16
	if rng.IntN(2) == 0 {
		length = 19
	}
	s := bins[rng.IntN(len(bins))]
	for len(s) < length-1 {
		s += strconv.Itoa(rng.IntN(10))
	}
	return s + string(LuhnDigit(s))
}

// LuhnDigit computes the Luhn check digit for the digits in s.
func LuhnDigit(s string) byte {
	sum := 0
	double := true
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return byte('0' + (10-sum%10)%10)
}

func genCustomer(rng *rand.Rand, i int) Customer {
	city := cities[rng.IntN(len(cities))]
	addr := fmt.Sprintf("%s%s%d号%d栋%d室", city.prefix, streets[rng.IntN(len(streets))], 1+rng.IntN(300), 1+rng.IntN(20), 100+rng.IntN(2000))
	mobile := genMobile(rng)
	name := genName(rng)
	cu := Customer{
		ID:         fmt.Sprintf("C%05d", 10001+i),
		Name:       name,
		Mobile:     mobile,
		IDCard:     genIDCard(rng, city.areaCode),
		Email:      fmt.Sprintf("user%05d@example.cn", 10001+i),
		Address:    addr,
		BankCard:   genBankCard(rng),
		OwnerID:    Hosts[i%len(Hosts)],
		Level:      []string{"VIP", "普通", "新客"}[rng.IntN(3)],
		Tags:       []string{"直播间", []string{"美妆", "数码", "食品", "服饰"}[rng.IntN(4)]},
		TotalSpent: float64(rng.IntN(2000000)) / 100,
		CreatedAt:  fmt.Sprintf("2026-%02d-%02dT%02d:%02d:00+08:00", 1+rng.IntN(11), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60)),
	}
	alt := genMobile(rng)
	cu.Note = fmt.Sprintf("老客户，备用电话 %s，喜欢晚上直播下单", alt)
	cu.ChatLog = []Chat{
		{At: "2026-11-20T20:15:00+08:00", From: "customer", Text: fmt.Sprintf("主播你好，我的手机号是%s，快递到%s", mobile, addr)},
		{At: "2026-11-20T20:16:30+08:00", From: "agent", Text: "好的，已为您备注，请核对身份证号用于清关：" + cu.IDCard},
		{At: "2026-11-20T20:17:05+08:00", From: "customer", Text: "退款请打到这张卡 " + cu.BankCard + "，或者发邮件 " + cu.Email},
	}
	for j := range 1 + rng.IntN(3) {
		cu.Orders = append(cu.Orders, OrderIn{
			OrderID: fmt.Sprintf("O%s-%d", cu.ID[1:], j+1),
			Amount:  float64(1000+rng.IntN(100000)) / 100,
			Status:  statuses[rng.IntN(len(statuses))],
			Receiver: Receiver{
				Name: name, Phone: mobile, Address: addr,
			},
		})
	}
	return cu
}

// Customers returns a copy of the generated customers (tests use it as the list of planted secrets).
func (c *CRM) Customers() []Customer {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]Customer(nil), c.customers...)
}

// Handler serves the CRM's API.
func (c *CRM) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/customers", c.listCustomers)
	mux.HandleFunc("GET /api/customers/export", c.exportCustomers)
	mux.HandleFunc("GET /api/customers/{id}", c.getCustomer)
	mux.HandleFunc("POST /api/customers", c.createCustomer)
	mux.HandleFunc("PATCH /api/customers/{id}", c.updateCustomer)
	mux.HandleFunc("PUT /api/customers/{id}", c.updateCustomer)
	mux.HandleFunc("DELETE /api/customers/{id}", c.deleteCustomer)
	mux.HandleFunc("GET /api/orders", c.listOrders)
	mux.HandleFunc("GET /api/orders/{id}", c.getOrder)
	mux.HandleFunc("GET /api/products", c.listProducts)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": msg})
}

func page(r *http.Request, total int) (from, to, p, size int) {
	size, p = 20, 1
	if v, err := strconv.Atoi(r.URL.Query().Get("pageSize")); err == nil && v > 0 {
		size = min(v, 5000)
	}
	if v, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && v > 0 {
		p = v
	}
	from = min((p-1)*size, total)
	to = min(from+size, total)
	return from, to, p, size
}

func listEnvelope[T any](r *http.Request, items []T, path string) map[string]any {
	from, to, p, size := page(r, len(items))
	var next any
	if to < len(items) {
		next = fmt.Sprintf("%s?page=%d&pageSize=%d", path, p+1, size)
	}
	return map[string]any{"data": items[from:to], "page": p, "page_size": size, "total": len(items), "next": next}
}

func (c *CRM) listCustomers(w http.ResponseWriter, r *http.Request) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	items := c.customers
	if owner := r.URL.Query().Get("owner_id"); owner != "" {
		items = nil
		for _, cu := range c.customers {
			if cu.OwnerID == owner {
				items = append(items, cu)
			}
		}
	}
	writeJSON(w, http.StatusOK, listEnvelope(r, items, "/api/customers"))
}

func (c *CRM) getCustomer(w http.ResponseWriter, r *http.Request) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	i, ok := c.byID[r.PathValue("id")]
	if !ok {
		writeErr(w, http.StatusNotFound, "customer "+r.PathValue("id")+" not found")
		return
	}
	writeJSON(w, http.StatusOK, c.customers[i])
}

func (c *CRM) createCustomer(w http.ResponseWriter, r *http.Request) {
	var cu Customer
	if err := json.NewDecoder(r.Body).Decode(&cu); err != nil {
		writeErr(w, http.StatusBadRequest, "invalid customer: "+err.Error())
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cu.ID = fmt.Sprintf("C%05d", 10001+len(c.customers))
	c.byID[cu.ID] = len(c.customers)
	c.customers = append(c.customers, cu)
	writeJSON(w, http.StatusCreated, cu)
}

func (c *CRM) updateCustomer(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.byID[r.PathValue("id")]
	if !ok {
		writeErr(w, http.StatusNotFound, "customer not found")
		return
	}
	cu := c.customers[i]
	if err := json.NewDecoder(r.Body).Decode(&cu); err != nil {
		writeErr(w, http.StatusBadRequest, "invalid update: "+err.Error())
		return
	}
	cu.ID = c.customers[i].ID
	c.customers[i] = cu
	writeJSON(w, http.StatusOK, cu)
}

func (c *CRM) deleteCustomer(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byID[r.PathValue("id")]; !ok {
		writeErr(w, http.StatusNotFound, "customer not found")
		return
	}
	delete(c.byID, r.PathValue("id"))
	w.WriteHeader(http.StatusNoContent)
}

func (c *CRM) exportCustomers(w http.ResponseWriter, r *http.Request) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="customers.csv"`)
	cw := csv.NewWriter(w)
	cw.Write([]string{"id", "name", "mobile", "id_card", "email", "address", "bank_card", "owner_id", "level", "total_spent", "note"})
	for _, cu := range c.customers {
		cw.Write([]string{cu.ID, cu.Name, cu.Mobile, cu.IDCard, cu.Email, cu.Address, cu.BankCard, cu.OwnerID, cu.Level,
			strconv.FormatFloat(cu.TotalSpent, 'f', 2, 64), cu.Note})
	}
	cw.Flush()
}

func (c *CRM) listOrders(w http.ResponseWriter, r *http.Request) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	writeJSON(w, http.StatusOK, listEnvelope(r, c.orders, "/api/orders"))
}

func (c *CRM) getOrder(w http.ResponseWriter, r *http.Request) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, o := range c.orders {
		if strings.EqualFold(o.OrderID, r.PathValue("id")) {
			writeJSON(w, http.StatusOK, o)
			return
		}
	}
	writeErr(w, http.StatusNotFound, "order not found")
}

func (c *CRM) listProducts(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, listEnvelope(r, c.products, "/api/products"))
}
