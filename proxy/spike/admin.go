package spike

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"
)

// AdminHandler serves containment to security admins, on the admin listener only:
//
//	GET    /restrictions          the restrictions in force: a JSON array of Restriction
//	PUT    /restrictions/{user}   restrict user; body {"for": "2h", "reason": "…"}
//	DELETE /restrictions/{user}   release user (what `veil users release USER` calls)
//
// authorize names the admin making a request (recorded as "by" and in the audit hook) or
// refuses it with an error (401). Answers are JSON; errors are {"error": "…"}. now is the
// clock restrictions start from (nil: time.Now).
func AdminHandler(r Restrictions, authorize func(*http.Request) (string, error), now func() time.Time) http.Handler {
	if now == nil {
		now = time.Now
	}
	mux := http.NewServeMux()
	auth := func(h func(w http.ResponseWriter, req *http.Request, by string)) http.HandlerFunc {
		return func(w http.ResponseWriter, req *http.Request) {
			by, err := authorize(req)
			if err != nil || by == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="veil-admin"`)
				writeJSON(w, http.StatusUnauthorized, errorBody("a security admin's credentials are required"))
				return
			}
			h(w, req, by)
		}
	}
	mux.Handle("GET /restrictions", auth(func(w http.ResponseWriter, req *http.Request, _ string) {
		list, err := r.List(req.Context())
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, errorBody("restrictions unavailable: "+err.Error()))
			return
		}
		writeJSON(w, http.StatusOK, list)
	}))
	mux.Handle("PUT /restrictions/{user}", auth(func(w http.ResponseWriter, req *http.Request, by string) {
		var body struct {
			For    string `json:"for"`
			Reason string `json:"reason"`
		}
		dec := json.NewDecoder(io.LimitReader(req.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody(`want {"for": "2h", "reason": "…"}`))
			return
		}
		d, err := time.ParseDuration(body.For)
		if err != nil || d < time.Minute || d > 30*24*time.Hour {
			writeJSON(w, http.StatusBadRequest, errorBody(`"for" must be a duration from 1m to 720h`))
			return
		}
		if strings.TrimSpace(body.Reason) == "" {
			writeJSON(w, http.StatusBadRequest, errorBody(`"reason" is required: it is audited`))
			return
		}
		user := req.PathValue("user")
		if err := r.Restrict(req.Context(), user, now().Add(d), body.Reason, by); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, errorBody(err.Error()))
			return
		}
		restricted, until, _ := r.Restricted(req.Context(), user)
		writeJSON(w, http.StatusOK, map[string]any{"user": user, "restricted": restricted, "until": until})
	}))
	mux.Handle("DELETE /restrictions/{user}", auth(func(w http.ResponseWriter, req *http.Request, by string) {
		user := req.PathValue("user")
		err := r.Release(req.Context(), user, by)
		switch {
		case errors.Is(err, ErrNotRestricted):
			writeJSON(w, http.StatusNotFound, errorBody(user+" is not restricted"))
		case err != nil:
			writeJSON(w, http.StatusServiceUnavailable, errorBody(err.Error()))
		default:
			writeJSON(w, http.StatusOK, map[string]any{"user": user, "restricted": false, "released_by": by})
		}
	}))
	return mux
}

// BearerAuth is an authorize function for AdminHandler: the request must carry
// "Authorization: Bearer <token>" and name the admin in X-Veil-Admin. An empty token refuses
// every request.
func BearerAuth(token string) func(*http.Request) (string, error) {
	return func(req *http.Request) (string, error) {
		got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		if token == "" || !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			return "", errors.New("spike: admin: bad or missing bearer token")
		}
		by := strings.TrimSpace(req.Header.Get("X-Veil-Admin"))
		if by == "" || len(by) > 128 || strings.ContainsFunc(by, unicode.IsControl) {
			return "", errors.New("spike: admin: X-Veil-Admin must name the admin, in at most 128 bytes")
		}
		return by, nil
	}
}

func errorBody(msg string) map[string]string { return map[string]string{"error": msg} }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
