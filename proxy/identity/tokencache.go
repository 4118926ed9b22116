package identity

import (
	"container/list"
	"sync"
	"time"
)

// cacheEntry is one remembered identity answer: a user or a rejection.
type cacheEntry struct {
	key      [32]byte
	user     User
	rejected *Error
	fresh    time.Time // served without a call until then
	keep     time.Time // kept (for stale serving) until then
}

func (e *cacheEntry) result() (User, *Error) {
	if e.rejected != nil {
		return User{}, e.rejected
	}
	return cloneUser(e.user), nil
}

// tokenCache is a size-bounded LRU of identity answers keyed by the HMAC of a token. Entries
// past their keep time are dropped when met.
type tokenCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List // front: most recently used
	items map[[32]byte]*list.Element
	now   func() time.Time
}

func newTokenCache(max int, now func() time.Time) *tokenCache {
	return &tokenCache{max: max, ll: list.New(), items: make(map[[32]byte]*list.Element), now: now}
}

// get returns the entry for key, fresh or not, unless it is past its keep time.
func (c *tokenCache) get(key [32]byte) (*cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !c.now().Before(e.keep) {
		c.ll.Remove(el)
		delete(c.items, key)
		return nil, false
	}
	c.ll.MoveToFront(el)
	return e, true
}

// put stores e, replacing any entry for its key, and evicts the least recently used entries
// beyond the bound.
func (c *tokenCache) put(e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[e.key]; ok {
		el.Value = e
		c.ll.MoveToFront(el)
		return
	}
	c.items[e.key] = c.ll.PushFront(e)
	for c.ll.Len() > c.max {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
