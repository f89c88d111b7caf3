package admin

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SessionCookie is the status page's session: set by POST /ui/login for the
// admin token, it stands for the token on every admin request a browser makes
// (a browser cannot add an Authorization header to a page load). HttpOnly (no
// script reads it), SameSite=Strict (no other site's page sends it), Secure on
// TLS; it holds an expiry and an HMAC of it keyed by the token, never the token,
// and ends when the token changes.
const SessionCookie = "wasmsrv_admin"

// sessionTTL is how long a status page session lasts.
const sessionTTL = 12 * time.Hour

// auth checks requests against the admin token.
type auth struct {
	token  string
	bearer []byte
	now    func() time.Time
}

func newAuth(token string) *auth {
	return &auth{token: token, bearer: []byte("Bearer " + token), now: time.Now}
}

// ok reports whether r carries the token: as "Authorization: Bearer TOKEN" or
// as a valid session cookie.
func (a *auth) ok(r *http.Request) bool {
	if a.token == "" {
		return true
	}
	if h := r.Header.Get("Authorization"); h != "" {
		return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(h)), a.bearer) == 1
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return false
	}
	exp, mac, ok := strings.Cut(c.Value, ".")
	if !ok {
		return false
	}
	secs, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || a.now().Unix() >= secs {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(a.mac(exp)))
}

func (a *auth) mac(exp string) string {
	m := hmac.New(sha256.New, []byte(a.token))
	m.Write([]byte("wasmsrv admin session\x00"))
	m.Write([]byte(exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// login answers POST /ui/login: a form with the token sets the session cookie.
func (a *auth) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	token := r.PostFormValue("token")
	if a.token == "" {
		w.WriteHeader(http.StatusNoContent) // nothing to log in to
		return
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(a.token)) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "wrong admin token"})
		return
	}
	exp := strconv.FormatInt(a.now().Add(sessionTTL).Unix(), 10)
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: exp + "." + a.mac(exp), Path: "/",
		MaxAge: int(sessionTTL / time.Second), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// logout answers POST /ui/logout: the cookie is dropped.
func logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}
