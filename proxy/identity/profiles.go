package identity

import (
	"maps"
	"slices"
	"sort"
)

// Credential says where a client request carries the upstream token, and how the identity call
// sends it back to the upstream.
type Credential struct {
	// Header is the header that carries the token. Zero: "Authorization".
	Header string
	// Scheme is the authentication scheme before the token ("Bearer", "Zoho-oauthtoken"),
	// matched case-insensitively. Zero: "Bearer" on the Authorization header; on any other
	// header the whole value is the token.
	Scheme string
}

// Profile says how to ask one upstream who a token belongs to, and how to read the answer.
// Paths are gjson paths into the JSON answer (https://github.com/tidwall/gjson/blob/master/SYNTAX.md).
type Profile struct {
	// Name identifies the profile in errors and claims ("salesforce", "generic", …).
	Name string
	// Method of the identity call: GET (zero) or POST (with an empty body).
	Method string
	// URL of the identity call: an absolute http(s) URL, or a path (with an optional query)
	// that is appended to the route's upstream URL the way a proxied request path is.
	URL string
	// Credentials are the places the client's token may arrive in, in order; the identity
	// call sends the token the way it arrived. A request carrying more than one of them is
	// refused (400). Zero: [{Authorization, Bearer}].
	Credentials []Credential
	// ID are paths to the user's id; the first that holds a non-empty string or number wins.
	// Required. An answer without an id means the upstream did not recognise the token.
	ID []string
	// Email, DisplayName and Department are optional paths; the first non-empty string wins.
	Email, DisplayName, Department []string
	// Roles are paths to the user's roles at the vendor; every path contributes. A string is
	// a comma-separated list, an array holds strings, an object lists the roles whose value is
	// true ({"owner": true}). They become User.Roles through TokenResolverConfig.RoleMap.
	Roles []string
	// Tenant is the path to the tenant (organisation) the token belongs to; with
	// TokenResolverConfig.Tenant set, an answer naming another tenant is refused.
	Tenant string
	// Claims copies more of the answer into User.Claims: claim name ⇒ path. The names Veil
	// sets itself (profile, id, email, name, department, tenant, vendor_roles) are reserved.
	Claims map[string]string
	// RejectStatus are the HTTP statuses that mean "this token is not valid". Zero: 401, 403.
	RejectStatus []int
	// ResultPath is the path to a result code inside the answer, for upstreams that report
	// errors in the body (Lark: "code"). An answer whose code is not ResultOK is a failure,
	// unless the code is one of RejectResults, which mean "this token is not valid" whatever
	// the HTTP status.
	ResultPath    string
	ResultOK      string
	RejectResults []string
	// Strip are further request headers removed once a token is resolved, so that no second
	// credential rides along to the upstream (a Salesforce session Cookie, say).
	Strip []string
}

// Built-in profile names.
const (
	ProfileSalesforce = "salesforce"
	ProfileZoho       = "zoho"
	ProfileLark       = "lark"
	ProfileNocoDB     = "nocodb"
	ProfileAirtable   = "airtable"
	ProfileGeneric    = "generic"
)

// BuiltinProfile returns a fresh copy of a built-in profile, ready to use or to adjust with
// Override:
//
//   - salesforce: GET /services/oauth2/userinfo on the instance (My Domain) URL; id user_id,
//     tenant organization_id.
//   - zoho: GET /crm/v8/users?type=CurrentUser, token as "Authorization: Zoho-oauthtoken …"
//     (or Bearer); id users[0].id, roles users[0].role.name and users[0].profile.name.
//   - lark: GET /open-apis/authen/v1/user_info with a user_access_token; id data.user_id
//     (data.open_id when the app may not read user ids), tenant data.tenant_key; body codes
//     for missing, invalid and expired tokens are rejections.
//   - nocodb: GET /api/v1/auth/user/me with xc-token, xc-auth or a bearer token; id id, roles
//     roles. NocoDB answers 200 without an id for an unknown token: that is a rejection.
//   - airtable: GET /v0/meta/whoami on https://api.airtable.com; id id, email email (with
//     the user.email:read scope).
//   - generic: nothing set; URL and ID must be configured.
func BuiltinProfile(name string) (Profile, bool) {
	switch name {
	case ProfileSalesforce:
		return Profile{
			Name:        ProfileSalesforce,
			URL:         "/services/oauth2/userinfo",
			Credentials: []Credential{{Header: "Authorization", Scheme: "Bearer"}},
			ID:          []string{"user_id"},
			Email:       []string{"email"},
			DisplayName: []string{"name"},
			Tenant:      "organization_id",
			Claims: map[string]string{
				"username":        "preferred_username",
				"organization_id": "organization_id",
				"user_type":       "user_type",
			},
			Strip: []string{"Cookie"},
		}, true
	case ProfileZoho:
		return Profile{
			Name: ProfileZoho,
			URL:  "/crm/v8/users?type=CurrentUser",
			Credentials: []Credential{
				{Header: "Authorization", Scheme: "Zoho-oauthtoken"},
				{Header: "Authorization", Scheme: "Bearer"},
			},
			ID:          []string{"users.0.id"},
			Email:       []string{"users.0.email"},
			DisplayName: []string{"users.0.full_name"},
			Roles:       []string{"users.0.role.name", "users.0.profile.name"},
			Claims: map[string]string{
				"zuid":        "users.0.zuid",
				"status":      "users.0.status",
				"role":        "users.0.role.name",
				"crm_profile": "users.0.profile.name",
			},
			Strip: []string{"Cookie"},
		}, true
	case ProfileLark:
		return Profile{
			Name:        ProfileLark,
			URL:         "/open-apis/authen/v1/user_info",
			Credentials: []Credential{{Header: "Authorization", Scheme: "Bearer"}},
			ID:          []string{"data.user_id", "data.open_id"},
			Email:       []string{"data.enterprise_email", "data.email"},
			DisplayName: []string{"data.name"},
			Tenant:      "data.tenant_key",
			Claims: map[string]string{
				"open_id":     "data.open_id",
				"union_id":    "data.union_id",
				"employee_no": "data.employee_no",
				"tenant_key":  "data.tenant_key",
			},
			ResultPath: "code",
			ResultOK:   "0",
			// Missing token, invalid tenant/app/user token, expired user token.
			RejectResults: []string{"99991661", "99991663", "99991664", "99991668", "99991671", "99991677"},
			Strip:         []string{"Cookie"},
		}, true
	case ProfileNocoDB:
		return Profile{
			Name: ProfileNocoDB,
			URL:  "/api/v1/auth/user/me",
			Credentials: []Credential{
				{Header: "Xc-Token"},
				{Header: "Xc-Auth"},
				{Header: "Authorization", Scheme: "Bearer"},
			},
			ID:          []string{"id"},
			Email:       []string{"email"},
			DisplayName: []string{"display_name"},
			Roles:       []string{"roles"},
			Claims: map[string]string{
				"base_roles":      "base_roles",
				"workspace_roles": "workspace_roles",
			},
			Strip: []string{"Cookie", "Xc-Shared-Base-Id", "Xc-Preview"},
		}, true
	case ProfileAirtable:
		return Profile{
			Name:        ProfileAirtable,
			URL:         "/v0/meta/whoami",
			Credentials: []Credential{{Header: "Authorization", Scheme: "Bearer"}},
			ID:          []string{"id"},
			Email:       []string{"email"},
			Claims:      map[string]string{"scopes": "scopes"},
			Strip:       []string{"Cookie"},
		}, true
	case ProfileGeneric:
		return Profile{Name: ProfileGeneric}, true
	}
	return Profile{}, false
}

// BuiltinProfiles returns the names of the built-in profiles, sorted.
func BuiltinProfiles() []string {
	names := []string{ProfileSalesforce, ProfileZoho, ProfileLark, ProfileNocoDB, ProfileAirtable, ProfileGeneric}
	sort.Strings(names)
	return names
}

// Override returns p with every non-zero field of o in place of p's (slices and maps are
// replaced, not merged). It is how a configuration adjusts a built-in profile.
func (p Profile) Override(o Profile) Profile {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	setSlice := func(dst *[]string, v []string) {
		if len(v) > 0 {
			*dst = slices.Clone(v)
		}
	}
	set(&p.Name, o.Name)
	set(&p.Method, o.Method)
	set(&p.URL, o.URL)
	if len(o.Credentials) > 0 {
		p.Credentials = slices.Clone(o.Credentials)
	}
	setSlice(&p.ID, o.ID)
	setSlice(&p.Email, o.Email)
	setSlice(&p.DisplayName, o.DisplayName)
	setSlice(&p.Department, o.Department)
	setSlice(&p.Roles, o.Roles)
	set(&p.Tenant, o.Tenant)
	if len(o.Claims) > 0 {
		p.Claims = maps.Clone(o.Claims)
	}
	if len(o.RejectStatus) > 0 {
		p.RejectStatus = slices.Clone(o.RejectStatus)
	}
	set(&p.ResultPath, o.ResultPath)
	set(&p.ResultOK, o.ResultOK)
	setSlice(&p.RejectResults, o.RejectResults)
	setSlice(&p.Strip, o.Strip)
	return p
}
