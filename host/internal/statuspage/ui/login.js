// The token goes to POST /ui/login with the admin API's change header (a
// cross-site form cannot send it); the answer sets an HttpOnly, SameSite=Strict
// session cookie, and the page is loaded again with it.
"use strict";
document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const err = document.getElementById("error");
  err.textContent = "";
  const body = new URLSearchParams({ token: document.getElementById("token").value });
  try {
    const r = await fetch("/ui/login", {
      method: "POST", body, credentials: "same-origin", headers: { "Wasmsrv-Admin": "1" },
    });
    if (r.ok) {
      location.reload();
      return;
    }
    err.textContent = r.status === 401 ? "wrong token" : "log in failed: " + r.status;
  } catch (e) {
    err.textContent = "log in failed: " + e;
  }
});
