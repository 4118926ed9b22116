package proxy_test

import (
	"net/http"
	"testing"

	"github.com/veilproxy/veil/adapters/generic"
	"github.com/veilproxy/veil/internal/democrm"
	"github.com/veilproxy/veil/internal/veiltest"
	"github.com/veilproxy/veil/proxy/audit"
)

// rig is veiltest's Rig in front of the demo CRM (or another upstream), with the demo routes.
type rig struct {
	*veiltest.Rig
	crm *democrm.CRM
}

type rigOptions = veiltest.Options

func str(s string) *string { return &s }

// demoResources are the resources `veil demo` configures.
func demoResources() []generic.Resource {
	return []generic.Resource{
		{Match: "/api/customers", Type: "customers", Records: str("data"), PageSizeParam: "pageSize"},
		{Match: "/api/customers/export", Type: "customers", Export: true, Format: "csv"},
		{Match: "/api/customers/{id}", Type: "customers"},
		{Match: "/api/orders", Type: "orders", Records: str("data"), ID: "order_id", PageSizeParam: "pageSize"},
		{Match: "/api/orders/{id}", Type: "orders", ID: "order_id"},
		{Match: "/api/products", Type: "products", Records: str("data")},
	}
}

func newRig(t testing.TB, o rigOptions) *rig {
	t.Helper()
	r := &rig{}
	if o.Upstream == nil {
		r.crm = democrm.New(60, 7)
		o.Upstream = r.crm.Handler()
	}
	if o.Adapter == nil {
		ad, err := generic.New(generic.Options{Resources: demoResources()})
		if err != nil {
			t.Fatal(err)
		}
		o.Adapter = ad
	}
	if o.PathPrefix == "" {
		o.PathPrefix = "/api/"
	}
	o.Route = "livecrm"
	r.Rig = veiltest.New(t, o)
	return r
}

func (r *rig) do(method, target, user, roles string, body []byte, hdr ...string) (*http.Response, []byte) {
	r.T.Helper()
	return r.Do(method, target, user, roles, body, hdr...)
}

func (r *rig) auditRecords() []audit.Record { return r.AuditRecords() }

// secretsOf lists the values a cs_agent must never see for a customer.
func secretsOf(c democrm.Customer) []string {
	s := []string{c.Mobile, c.IDCard, c.BankCard, c.Email, c.Address}
	for _, o := range c.Orders {
		s = append(s, o.Receiver.Phone, o.Receiver.Address)
	}
	return s
}

func leaks(body []byte, secrets []string) []string { return veiltest.Leaks(body, secrets) }
