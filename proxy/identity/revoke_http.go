package identity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// maxAdminBody bounds a revocation request body.
const maxAdminBody = 64 << 10

// RevocationEvent is one change made through the admin endpoint, for the audit log.
type RevocationEvent struct {
	Time       time.Time
	Action     string    // "revoke" or "unrevoke"
	Entry      string    // the normalised entry (a token is recorded by its hash only)
	Expires    time.Time // zero: never (revoke only)
	Reason     string    // the operator's note
	RemoteAddr string
	Err        error // non-nil when the change was not made
}

// RevocationAdminConfig configures the revocation admin endpoint.
type RevocationAdminConfig struct {
	// Store is the list the endpoint edits. Required.
	Store RevocationStore
	// TokenSHA256 is the SHA-256 of the bearer token operators present
	// ("Authorization: Bearer <token>") on every call, reads included. Required: the admin
	// listener also serves metrics to scrapers that must not revoke anyone.
	TokenSHA256 [32]byte
	// Audit is called for every change attempted with a valid admin token, made or not.
	// Nil: changes are only logged.
	Audit func(ctx context.Context, e RevocationEvent)
	// Logger receives every change. Nil: discard.
	Logger *slog.Logger
	// MaxTTL caps the ttl an operator may give (0: no cap). Entries without ttl never lapse.
	MaxTTL time.Duration
}

// revocationAdmin serves the admin endpoint.
type revocationAdmin struct {
	c   RevocationAdminConfig
	log *slog.Logger
	now func() time.Time
}

// NewRevocationAdmin returns the admin endpoint for c.Store. Mount it at a path of the admin
// listener (the paths below are relative to it; the lead mounts it at /revocations):
//
//	GET    /        → 200 {"revocations":[{"entry":"alice","expires":"…"},…]}
//	POST   /        {"entry":"alice"|"token":"<raw token>","ttl":"24h","reason":"…"}
//	                → 201 {"entry":"…","expires":"…"}
//	DELETE /?entry=alice  → 204 (409 for an entry listed in policy data)
//
// Every call needs "Authorization: Bearer <admin token>" (401 otherwise). A raw token given
// to POST is hashed at once (TokenHash) and never stored, logged or echoed.
func NewRevocationAdmin(c RevocationAdminConfig) (http.Handler, error) {
	if c.Store == nil {
		return nil, errors.New("identity: revocation admin: no store")
	}
	if c.TokenSHA256 == ([32]byte{}) {
		return nil, errors.New("identity: revocation admin: an admin token is required")
	}
	if c.MaxTTL < 0 {
		return nil, errors.New("identity: revocation admin: negative max ttl")
	}
	a := &revocationAdmin{c: c, log: c.Logger, now: time.Now}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	return a, nil
}

func (a *revocationAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="veil-admin"`)
		writeAdminError(w, http.StatusUnauthorized, "admin token required")
		return
	}
	if p := r.URL.Path; p != "" && p != "/" {
		writeAdminError(w, http.StatusNotFound, "not found")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		list, err := a.c.Store.List(r.Context())
		if err != nil {
			a.log.ErrorContext(r.Context(), "list revocations", "err", err)
			writeAdminError(w, http.StatusServiceUnavailable, "the revocation list cannot be read")
			return
		}
		if list == nil {
			list = []Revocation{}
		}
		writeAdminJSON(w, http.StatusOK, map[string]any{"revocations": list})
	case http.MethodPost:
		a.revoke(w, r)
	case http.MethodDelete:
		a.unrevoke(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST, DELETE")
		writeAdminError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

func (a *revocationAdmin) authorized(r *http.Request) bool {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return false
	}
	token, ok := bearerToken(vals[0])
	if !ok || token == "" {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], a.c.TokenSHA256[:]) == 1
}

type revokeRequest struct {
	Entry  string `json:"entry"`
	Token  string `json:"token"`
	TTL    string `json:"ttl"`
	Reason string `json:"reason"`
}

func (a *revocationAdmin) revoke(w http.ResponseWriter, r *http.Request) {
	var req revokeRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeAdminError(w, http.StatusBadRequest, "the body must be a JSON object with entry or token")
		return
	}
	raw := req.Entry
	switch {
	case req.Entry != "" && req.Token != "":
		writeAdminError(w, http.StatusBadRequest, "give entry or token, not both")
		return
	case req.Token != "":
		raw = TokenHash(req.Token)
	}
	entry, err := NormalizeRevocation(raw)
	if err != nil {
		writeAdminError(w, http.StatusBadRequest, err.Error())
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl <= 0 {
			writeAdminError(w, http.StatusBadRequest, "ttl must be a positive duration such as 24h")
			return
		}
	}
	if a.c.MaxTTL > 0 && (ttl == 0 || ttl > a.c.MaxTTL) {
		writeAdminError(w, http.StatusBadRequest, fmt.Sprintf("ttl must be at most %s", a.c.MaxTTL))
		return
	}
	ev := RevocationEvent{Time: a.now().UTC(), Action: "revoke", Entry: entry, Reason: req.Reason, RemoteAddr: r.RemoteAddr}
	if ttl > 0 {
		ev.Expires = ev.Time.Add(ttl)
	}
	ev.Err = a.c.Store.Revoke(r.Context(), entry, ttl)
	a.record(r.Context(), ev)
	if ev.Err != nil {
		writeAdminError(w, http.StatusServiceUnavailable, "the revocation could not be stored")
		return
	}
	writeAdminJSON(w, http.StatusCreated, Revocation{Entry: entry, Expires: ev.Expires})
}

func (a *revocationAdmin) unrevoke(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if len(q["entry"]) != 1 {
		writeAdminError(w, http.StatusBadRequest, "give exactly one entry parameter")
		return
	}
	entry, err := NormalizeRevocation(q.Get("entry"))
	if err != nil {
		writeAdminError(w, http.StatusBadRequest, err.Error())
		return
	}
	ev := RevocationEvent{Time: a.now().UTC(), Action: "unrevoke", Entry: entry, Reason: q.Get("reason"), RemoteAddr: r.RemoteAddr}
	ev.Err = a.c.Store.Unrevoke(r.Context(), entry)
	a.record(r.Context(), ev)
	switch {
	case errors.Is(ev.Err, ErrStaticRevocation):
		writeAdminError(w, http.StatusConflict, "the entry is listed in policy data (data.veil.revoked); remove it there")
	case ev.Err != nil:
		writeAdminError(w, http.StatusServiceUnavailable, "the revocation could not be removed")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (a *revocationAdmin) record(ctx context.Context, ev RevocationEvent) {
	attrs := []any{"action", ev.Action, "entry", ev.Entry, "reason", ev.Reason, "remote_addr", ev.RemoteAddr}
	if !ev.Expires.IsZero() {
		attrs = append(attrs, "expires", ev.Expires)
	}
	if ev.Err != nil {
		a.log.ErrorContext(ctx, "revocation change failed", append(attrs, "err", ev.Err)...)
	} else {
		a.log.InfoContext(ctx, "revocation changed", attrs...)
	}
	if a.c.Audit != nil {
		a.c.Audit(ctx, ev)
	}
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the status is sent; a write error has no one to go to
}

func writeAdminError(w http.ResponseWriter, status int, reason string) {
	writeAdminJSON(w, status, map[string]string{"error": reason})
}
