package limit_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/veilproxy/veil/proxy/limit"
)

// A request reserves the page it asked for before it is forwarded, and settles to the
// records the response carried.
func Example() {
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	store := limit.NewMemory(func() time.Time { return now })
	budgets := []limit.Budget{{Name: "user-customers-hourly", Key: "user:alice", Window: time.Hour, Records: 1000}}
	ctx := context.Background()

	r, st, err := store.Reserve(ctx, budgets, 500) // pageSize=500
	if err != nil || st[0].Rejected {
		panic("first page refused")
	}
	st, _ = store.Settle(ctx, r, 420) // the last page had 420 records
	fmt.Println("remaining after the first page:", st[0].Remaining)

	r, _, _ = store.Reserve(ctx, budgets, 500)
	store.Settle(ctx, r, 500)
	_, st, _ = store.Reserve(ctx, budgets, 500)
	h := http.Header{}
	limit.SetHeaders(h, st)
	fmt.Println("third page refused:", st[0].Rejected, "remaining:", st[0].Remaining)
	fmt.Println("Retry-After:", h.Get("Retry-After"))
	fmt.Println("RateLimit:", h.Get("RateLimit"))
	// Output:
	// remaining after the first page: 580
	// third page refused: true remaining: 80
	// Retry-After: 3660
	// RateLimit: "user-customers-hourly";r=80;t=3660
}
