package emu

import (
	"net/http"
	"strings"
)

// Privilege names as Doris spells them in GRANT and SHOW GRANTS.
const (
	PrivSelect = "Select_priv"
	PrivLoad   = "Load_priv"
	PrivAlter  = "Alter_priv"
	PrivCreate = "Create_priv"
	PrivDrop   = "Drop_priv"
	PrivAdmin  = "Admin_priv"
)

var allPrivs = []string{PrivAdmin, PrivSelect, PrivLoad, PrivAlter, PrivCreate, PrivDrop}

// User is an account of the emulated cluster. Privileges are global.
type User struct {
	Password string
	Privs    []string
}

// has reports whether u holds priv; Admin_priv implies every privilege.
func (u User) has(priv string) bool {
	for _, p := range u.Privs {
		if strings.EqualFold(p, priv) || strings.EqualFold(p, PrivAdmin) {
			return true
		}
	}
	return false
}

// grants lists u's privileges in Doris's order for SHOW GRANTS.
func (u User) grants() string {
	var out []string
	for _, p := range allPrivs {
		if p == PrivAdmin && u.has(PrivAdmin) || p != PrivAdmin && u.has(p) {
			out = append(out, p)
		}
	}
	return strings.Join(out, ",")
}

// check returns Doris's access-denied error when u lacks priv.
func (u User) check(priv string) error {
	if u.has(priv) {
		return nil
	}
	return accessDenied(strings.ToUpper(strings.TrimSuffix(priv, "_priv")))
}

// authenticate reads HTTP Basic credentials; ok is false for an unknown
// user or a wrong password, which every endpoint answers with 401.
func (e *Emulator) authenticate(r *http.Request) (name string, u User, ok bool) {
	name, pass, has := r.BasicAuth()
	if !has {
		return "", User{}, false
	}
	// Doris accepts "user@cluster" style names from old clients.
	name = strings.TrimPrefix(name, "default_cluster:")
	u, found := e.users[name]
	if !found || u.Password != pass {
		return "", User{}, false
	}
	return name, u, true
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm=""`)
	writeJSON(w, http.StatusUnauthorized, map[string]any{
		"msg": "Unauthorized", "code": 401, "data": "Access denied for user, check your user name or password", "count": 0})
}
