package identity

import (
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// DefaultAPIKeyHeader is the header that carries an API key unless configured otherwise.
const DefaultAPIKeyHeader = "X-Api-Key"

// apiKeys checks static API keys.
type apiKeys struct {
	header string // canonical
	keys   []APIKey
}

func newAPIKeys(c APIKeysConfig) (*apiKeys, error) {
	k := &apiKeys{header: http.CanonicalHeaderKey(cmp.Or(c.Header, DefaultAPIKeyHeader))}
	if !validHeaderName(k.header) {
		return nil, fmt.Errorf("invalid header name %q", k.header)
	}
	if strings.EqualFold(k.header, "Authorization") {
		return nil, errors.New("the Authorization header carries bearer tokens; choose another header")
	}
	if len(c.Keys) == 0 {
		return nil, errors.New("no keys configured")
	}
	seen := make(map[[32]byte]bool, len(c.Keys))
	for i, key := range c.Keys {
		if key.User == "" {
			return nil, fmt.Errorf("key %d: user is required", i)
		}
		if key.SHA256 == ([32]byte{}) {
			return nil, fmt.Errorf("key %d (user %q): sha256 is required", i, key.User)
		}
		if seen[key.SHA256] {
			return nil, fmt.Errorf("key %d (user %q): the same key is configured twice", i, key.User)
		}
		seen[key.SHA256] = true
		key.Roles = slices.Clone(key.Roles)
		k.keys = append(k.keys, key)
	}
	return k, nil
}

// authenticate checks the API-key header and returns the key as presented. found is false
// when the header is absent.
func (k *apiKeys) authenticate(h http.Header) (u User, presented string, found bool, _ *Error) {
	vals := h.Values(k.header)
	if len(vals) == 0 {
		return User{}, "", false, nil
	}
	if len(vals) > 1 {
		return User{}, "", true, errorf(http.StatusBadRequest, "multiple API keys", "%d %s headers", len(vals), k.header)
	}
	presented = strings.Trim(vals[0], " \t")
	if presented == "" {
		return User{}, "", true, errorf(http.StatusUnauthorized, "invalid API key", "empty %s header", k.header)
	}
	sum := sha256.Sum256([]byte(presented))
	match := -1
	for i := range k.keys {
		eq := subtle.ConstantTimeCompare(sum[:], k.keys[i].SHA256[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return User{}, "", true, errorf(http.StatusUnauthorized, "invalid API key", "no configured key matches")
	}
	key := k.keys[match]
	return User{
		ID:         key.User,
		Roles:      slices.Clone(key.Roles),
		Department: key.Department,
		Source:     SourceAPIKey,
	}, presented, true, nil
}
