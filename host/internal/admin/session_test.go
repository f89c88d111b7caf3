package admin

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/statuspage"
)

func send(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func login(t *testing.T, base, token string, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/ui/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, _ := send(t, req)
	return resp
}

// The status page and its session: the page only for the token (header or
// cookie), the log-in only with the change header and the right token, from
// the listener's own origin; a cookie that is forged, expired, or made for
// another token is no session.
func TestStatusPageSession(t *testing.T) {
	crashes := statuspage.NewCrashes(4)
	srv := httptest.NewServer(Handler(&fake{}, Config{Addr: "127.0.0.1:0", Token: "tok", Crashes: crashes}, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	get := func(path string, cookie *http.Cookie, bearer string) (int, string, http.Header) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, body := send(t, req)
		return resp.StatusCode, body, resp.Header
	}
	if code, body, h := get("/ui", nil, ""); code != 200 || !strings.Contains(body, `id="login"`) || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("/ui without a token: %d %q %v", code, body, h)
	}
	if code, body, _ := get("/ui", nil, "tok"); code != 200 || !strings.Contains(body, `id="crashes"`) {
		t.Errorf("/ui with the bearer token: %d %q", code, body)
	}
	if code, _, _ := get("/ui/assets/status.js", nil, ""); code != 200 {
		t.Errorf("the page's script: %d", code)
	}
	for _, p := range []string{"/ui/assets/../admin.go", "/ui/assets/status.html", "/ui/assets/x"} {
		if code, _, _ := get(p, nil, ""); code == 200 {
			t.Errorf("%s: 200", p)
		}
	}
	if code, _, _ := get("/crashes", nil, ""); code != http.StatusUnauthorized {
		t.Errorf("/crashes without a token: %d", code)
	}

	// The log-in: the change header is required (a cross-site form cannot
	// send it), the page's own origin only, the right token only.
	if resp := login(t, srv.URL, "tok", nil); resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Errorf("log-in without the change header: %d %v", resp.StatusCode, resp.Cookies())
	}
	if resp := login(t, srv.URL, "tok", map[string]string{ChangeHeader: "1", "Origin": "http://evil.example"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("log-in from another origin: %d", resp.StatusCode)
	}
	for _, wrong := range []string{"", "to", "tok ", "TOK", strings.Repeat("t", 10000)} {
		if resp := login(t, srv.URL, wrong, map[string]string{ChangeHeader: "1"}); resp.StatusCode == http.StatusNoContent || len(resp.Cookies()) != 0 {
			t.Errorf("log-in with %.20q: %d %v", wrong, resp.StatusCode, resp.Cookies())
		}
	}
	resp := login(t, srv.URL, "tok", map[string]string{ChangeHeader: "1"})
	if resp.StatusCode != http.StatusNoContent || len(resp.Cookies()) != 1 {
		t.Fatalf("log-in: %d %v", resp.StatusCode, resp.Cookies())
	}
	ck := resp.Cookies()[0]
	if ck.Name != SessionCookie || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || !strings.Contains(ck.Value, ".") {
		t.Errorf("session cookie %+v", ck)
	}
	session := &http.Cookie{Name: ck.Name, Value: ck.Value}
	if code, body, _ := get("/ui", session, ""); code != 200 || !strings.Contains(body, `id="crashes"`) {
		t.Errorf("/ui with the session: %d", code)
	}
	if code, body, _ := get("/crashes", session, ""); code != 200 || !strings.Contains(body, `"recent": []`) {
		t.Errorf("/crashes with the session: %d %q", code, body)
	}
	// A wrong bearer token is not rescued by a good cookie.
	if code, _, _ := get("/status", session, "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong bearer with a good cookie: %d", code)
	}

	exp, mac, _ := strings.Cut(ck.Value, ".")
	other := newAuth("other")
	past := strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)
	a := newAuth("tok")
	for _, v := range []string{"", ".", exp, exp + ".", "." + mac, exp + "." + mac + "x", "9" + exp + "." + mac,
		exp + "." + other.mac(exp), past + "." + a.mac(past), "-1." + a.mac("-1")} {
		if code, _, _ := get("/status", &http.Cookie{Name: SessionCookie, Value: v}, ""); code != http.StatusUnauthorized {
			t.Errorf("session %q: %d, want 401", v, code)
		}
	}

	// Log-out drops the cookie.
	req, _ := http.NewRequest("POST", srv.URL+"/ui/logout", nil)
	req.Header.Set(ChangeHeader, "1")
	out, _ := send(t, req)
	if out.StatusCode != http.StatusNoContent || len(out.Cookies()) != 1 || out.Cookies()[0].MaxAge >= 0 {
		t.Errorf("log-out: %d %v", out.StatusCode, out.Cookies())
	}
}
