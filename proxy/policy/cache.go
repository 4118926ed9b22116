package policy

import (
	"hash/maphash"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The decision cache. A policy that reads only some of the input — the shipped one reads
// input.user, input.resource and input.route, never the request's time or headers — decides
// the same for every request that agrees on those parts. The engine finds the parts a policy
// reads by walking its compiled rules for refs to input, keys cached decisions by a hash of
// exactly those parts (the policy revision is implied: each loaded policy has its own cache),
// and keeps them for a short TTL. A policy that reads the whole input, input with a computed
// key, or input.request.time is not cached.

// inputPart is one part of Input a cache key covers.
type inputPart uint32

const (
	partUserID inputPart = 1 << iota
	partUserRoles
	partUserDepartment
	partUserEmail
	partUserClaims
	partUserRestricted
	partRoute
	partMethod
	partPath
	partQuery
	partHeaders
	partClientIP
	partTime
	partResource

	partUser    = partUserID | partUserRoles | partUserDepartment | partUserEmail | partUserClaims | partUserRestricted
	partRequest = partMethod | partPath | partQuery | partHeaders | partClientIP | partTime
	partAll     = partUser | partRequest | partRoute | partResource
)

var partOf = map[string]inputPart{
	"user.id": partUserID, "user.roles": partUserRoles, "user.department": partUserDepartment,
	"user.email": partUserEmail, "user.claims": partUserClaims, "user.restricted": partUserRestricted,
	"user": partUser, "route": partRoute, "resource": partResource,
	"request.method": partMethod, "request.path": partPath, "request.query": partQuery,
	"request.headers": partHeaders, "request.client_ip": partClientIP, "request.time": partTime,
	"request": partRequest,
}

// inputParts returns the parts of the input the modules read.
func inputParts(modules map[string]*ast.Module) inputPart {
	var parts inputPart
	var vis *ast.GenericVisitor
	vis = ast.NewGenericVisitor(func(x any) bool {
		switch v := x.(type) {
		case ast.Ref:
			if v.HasPrefix(ast.InputRootRef) {
				parts |= partOfRef(v)
			} else {
				vis.Walk(v[0])
			}
			for _, t := range v[1:] {
				vis.Walk(t)
			}
			return true // the ref's terms were walked above
		case ast.Var:
			if v.Equal(ast.InputRootDocument.Value) {
				parts |= partAll // input used as a value, not through a ref
			}
		}
		return false
	})
	for _, m := range modules {
		vis.Walk(m)
	}
	return parts
}

// partOfRef maps input.a.b... to the part it reads; anything not a known static path is all.
func partOfRef(r ast.Ref) inputPart {
	var segs []string
	for _, t := range r[1:] {
		s, ok := t.Value.(ast.String)
		if !ok {
			break
		}
		segs = append(segs, string(s))
		if len(segs) == 2 {
			break
		}
	}
	for n := len(segs); n > 0; n-- {
		if p, ok := partOf[joinDots(segs[:n])]; ok {
			return p
		}
	}
	return partAll
}

func joinDots(s []string) string {
	out := s[0]
	for _, e := range s[1:] {
		out += "." + e
	}
	return out
}

// decisionCache holds decisions of one loaded policy by the hash of the input parts it reads.
type decisionCache struct {
	parts inputPart
	ttl   time.Duration
	max   int
	seed  maphash.Seed
	now   func() time.Time

	mu      sync.RWMutex
	entries map[uint64]cached
}

type cached struct {
	d       Decision
	expires time.Time
}

func newDecisionCache(parts inputPart, ttl time.Duration, max int, now func() time.Time) *decisionCache {
	if ttl <= 0 || parts&partTime != 0 {
		return nil
	}
	return &decisionCache{parts: parts, ttl: ttl, max: max, seed: maphash.MakeSeed(), now: now, entries: map[uint64]cached{}}
}

func (c *decisionCache) get(key uint64) (Decision, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || c.now().After(e.expires) {
		return Decision{}, false
	}
	return e.d, true
}

func (c *decisionCache) put(key uint64, d Decision) {
	c.mu.Lock()
	if len(c.entries) >= c.max {
		clear(c.entries) // a burst of distinct inputs: start over rather than track recency
	}
	c.entries[key] = cached{d: d, expires: c.now().Add(c.ttl)}
	c.mu.Unlock()
}

// key hashes the parts of in the policy reads. Strings are length-prefixed so that no two
// different inputs write the same bytes.
func (c *decisionCache) key(in *Input) (uint64, bool) {
	var h maphash.Hash
	h.SetSeed(c.seed)
	str := func(s string) {
		h.WriteString(strconv.Itoa(len(s)))
		h.WriteByte(':')
		h.WriteString(s)
	}
	strs := func(ss []string) {
		if ss == nil {
			h.WriteString("n") // null and [] may decide differently
			return
		}
		h.WriteString(strconv.Itoa(len(ss)))
		h.WriteByte('[')
		for _, s := range ss {
			str(s)
		}
	}
	values := func(m map[string][]string) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		h.WriteString(strconv.Itoa(len(keys)))
		for _, k := range keys {
			str(k)
			strs(m[k])
		}
	}
	p := c.parts
	if p&partUserID != 0 {
		str(in.User.ID)
	}
	if p&partUserRoles != 0 {
		strs(in.User.Roles)
	}
	if p&partUserDepartment != 0 {
		str(in.User.Department)
	}
	if p&partUserEmail != 0 {
		str(in.User.Email)
	}
	if p&partUserClaims != 0 {
		v, err := ast.InterfaceToValue(in.User.Claims)
		if err != nil {
			return 0, false
		}
		str(v.String()) // ast values print with sorted keys
	}
	if p&partUserRestricted != 0 {
		str(strconv.FormatBool(in.User.Restricted))
	}
	if p&partRoute != 0 {
		str(in.Route)
	}
	if p&partMethod != 0 {
		str(in.Request.Method)
	}
	if p&partPath != 0 {
		str(in.Request.Path)
	}
	if p&partQuery != 0 {
		values(in.Request.Query)
	}
	if p&partHeaders != 0 {
		values(in.Request.Headers)
	}
	if p&partClientIP != 0 {
		str(in.Request.ClientIP)
	}
	if p&partResource != 0 {
		r := &in.Resource
		str(r.System)
		str(r.Type)
		str(r.Action)
		if r.ID == nil {
			str("\x00nil")
		} else {
			str(*r.ID)
		}
		str(strconv.Itoa(r.PageSize))
		strs(r.Fields)
		str(strconv.FormatBool(r.Export))
	}
	return h.Sum64(), true
}
