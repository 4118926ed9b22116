package jiandaoyun

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

const (
	maxWidgetBody = 4 << 20 // bytes of one widget/list answer
	maxForms      = 10000   // forms whose labels are cached
	retryAfter    = 2 * time.Second
	staleFor      = 24 * time.Hour // labels kept past their TTL while widget/list fails
)

// labelCache fetches and caches each form's widget labels (widget/list), one call at a time
// per form and credential.
type labelCache struct {
	upstream string
	client   *http.Client
	ttl      time.Duration
	timeout  time.Duration
	now      func() time.Time

	group singleflight.Group
	mu    sync.Mutex
	forms map[string]*labels // by app_id/entry_id
}

// labels are one form's widget labels as last fetched.
type labels struct {
	byKey   map[string]string // raw key ⇒ label; never changed once stored
	fetched time.Time
	failed  time.Time // last failed refresh; zero when the last one succeeded
}

func newLabelCache(upstream string, client *http.Client, ttl, timeout time.Duration, now func() time.Time) *labelCache {
	return &labelCache{
		upstream: strings.TrimSuffix(upstream, "/"), client: client, ttl: ttl, timeout: timeout, now: now,
		forms: make(map[string]*labels),
	}
}

// get returns the labels of a form: cached while fresh, else fetched from path with the
// given credential (the client's Authorization value). While a refresh fails, labels up to a
// day old are served; a form never fetched is an error.
func (c *labelCache) get(appID, entryID, path, credential string) (map[string]string, error) {
	key := appID + "/" + entryID
	now := c.now()
	c.mu.Lock()
	var cur labels
	if l := c.forms[key]; l != nil {
		cur = *l
	}
	c.mu.Unlock()
	if cur.byKey != nil {
		if now.Sub(cur.fetched) < c.ttl {
			return cur.byKey, nil
		}
		if !cur.failed.IsZero() && now.Sub(cur.failed) < retryAfter && now.Sub(cur.fetched) < staleFor {
			return cur.byKey, nil
		}
	}
	// Callers with different credentials do not share a call: one client's bad key must not
	// fail another's request.
	sum := sha256.Sum256([]byte(credential))
	v, err, _ := c.group.Do(key+"\x00"+string(sum[:]), func() (any, error) {
		return c.fetch(appID, entryID, path, credential)
	})
	if err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if cur := c.forms[key]; cur != nil && now.Sub(cur.fetched) < staleFor {
			cur.failed = now
			return cur.byKey, nil
		}
		return nil, err
	}
	byKey := v.(map[string]string)
	c.mu.Lock()
	if len(c.forms) >= maxForms && c.forms[key] == nil {
		c.evictOldest()
	}
	c.forms[key] = &labels{byKey: byKey, fetched: now}
	c.mu.Unlock()
	return byKey, nil
}

// evictOldest drops the form fetched longest ago; c.mu is held.
func (c *labelCache) evictOldest() {
	var oldest string
	var at time.Time
	for k, l := range c.forms {
		if oldest == "" || l.fetched.Before(at) {
			oldest, at = k, l.fetched
		}
	}
	delete(c.forms, oldest)
}

// widgetList is the part of a widget/list answer the adapter reads.
type widgetList struct {
	Widgets *[]widget `json:"widgets"`
}

type widget struct {
	Name  string   `json:"name"`
	Label string   `json:"label"`
	Items []widget `json:"items"` // a subform's widgets
}

// fetch calls widget/list for one form.
func (c *labelCache) fetch(appID, entryID, path, credential string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	body, err := json.Marshal(map[string]string{"app_id": appID, "entry_id": entryID})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.upstream+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("jiandaoyun: widget/list: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if credential != "" {
		req.Header.Set("Authorization", credential)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jiandaoyun: widget/list: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jiandaoyun: widget/list: status %d", resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxWidgetBody+1))
	if err != nil {
		return nil, fmt.Errorf("jiandaoyun: widget/list: read: %w", err)
	}
	if len(raw) > maxWidgetBody {
		return nil, errors.New("jiandaoyun: widget/list: answer too large")
	}
	var wl widgetList
	if err := json.Unmarshal(raw, &wl); err != nil {
		return nil, fmt.Errorf("jiandaoyun: widget/list: %w", err)
	}
	if wl.Widgets == nil {
		return nil, errors.New("jiandaoyun: widget/list: no widgets in the answer")
	}
	byKey := make(map[string]string)
	addLabels(byKey, *wl.Widgets, 0)
	return byKey, nil
}

// addLabels adds name ⇒ label for ws and their subform items.
func addLabels(byKey map[string]string, ws []widget, depth int) {
	for _, w := range ws {
		if w.Name != "" && w.Label != "" {
			byKey[w.Name] = w.Label
		}
		if depth < 2 {
			addLabels(byKey, w.Items, depth+1)
		}
	}
}
