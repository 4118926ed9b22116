package policy_test

import (
	"context"
	"fmt"

	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy/policy"
)

func Example() {
	ctx := context.Background()
	engine, err := policy.New(ctx, policy.Options{FS: policies.FS})
	if err != nil {
		fmt.Println(err)
		return
	}

	// A customer-service agent lists customers through the demo CRM's route.
	d, err := engine.Decide(ctx, policy.Input{
		User:     policy.User{ID: "alice", Roles: []string{"cs_agent"}, Department: "cs"},
		Route:    "livecrm",
		Resource: policy.Resource{System: "generic", Type: "customers", Action: "list", PageSize: 100},
	})
	if err != nil {
		fmt.Println("deny:", err) // the proxy denies whenever Decide fails
		return
	}
	fmt.Println("allow:", d.Allow)
	fmt.Println("mobile:", d.Fields["mobile"], "id_card:", d.Fields["id_card"])
	fmt.Println("max page size:", d.MaxPageSize)
	for _, l := range d.Limits {
		fmt.Printf("limit %s: %d records per %v for %s\n", l.Name, l.Records, l.Window, l.Key)
	}

	// The same agent may not export.
	d, _ = engine.Decide(ctx, policy.Input{
		User:     policy.User{ID: "alice", Roles: []string{"cs_agent"}, Department: "cs"},
		Route:    "livecrm",
		Resource: policy.Resource{System: "generic", Type: "customers", Action: "export"},
	})
	fmt.Println("export:", d.Allow, d.Status, d.Reason)
	// Output:
	// allow: true
	// mobile: mask:phone id_card: mask:id_card
	// max page size: 500
	// limit user-customers-hourly: 2000 records per 1h0m0s for user:alice
	// limit dept-hourly: 20000 records per 1h0m0s for dept:cs
	// export: false 403 customer-service agents may not export data
}
