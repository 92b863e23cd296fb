// Who is signed in: the user name and token, kept in this tab only (sessionStorage), or on
// this device when "remember me" was ticked (localStorage). Nothing else is stored with them.
"use strict";

const KEY = "bls.credentials";

/** `{user, token}` or null. */
export function credentials() {
  for (const store of [sessionStorage, localStorage]) {
    try {
      const value = JSON.parse(store.getItem(KEY) || "null");
      if (value && typeof value.user === "string" && typeof value.token === "string") return value;
    } catch (error) { /* a damaged entry: as if signed out */ }
  }
  return null;
}

/** Keep `user` and `token` for this tab, or on this device when `remember`. */
export function remember(user, token, remember) {
  forget();
  (remember ? localStorage : sessionStorage).setItem(KEY, JSON.stringify({ user, token }));
}

/** Sign out: the credentials leave both stores. */
export function forget() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

// HTTP header values are bytes: send the name as its UTF-8 bytes (the server decodes them),
// so that any user name, emoji included, can sign in.
const wireName = (name) => String.fromCharCode(...new TextEncoder().encode(name));

/** The authentication headers for `user` and `token`. */
export const authHeaders = (user, token) => ({ "X-User": wireName(user), "X-User-Token": token });

/** The signed-in user's authentication headers (none when signed out). */
export function headers() {
  const c = credentials();
  return c ? authHeaders(c.user, c.token) : {};
}

const TOKEN_SHAPE = /^[0-9a-fA-F]{32}$/;

/**
 * Sign `user` in with `secret`, a password or a token. A secret shaped like a token (32 hex
 * characters) is tried as a token first (GET /api/logs?limit=1); any other, or one refused as
 * a token, is sent as a password to POST /api/session, which answers its token (the page
 * never computes it). Answers `{token}`, or `{status, retryAfter}` for the last refusal;
 * throws when the server cannot be reached.
 */
export async function signIn(user, secret) {
  const trimmed = secret.trim();
  if (TOKEN_SHAPE.test(trimmed)) {
    const response = await fetch("/api/logs?limit=1", { headers: authHeaders(user, trimmed) });
    if (response.ok) return { token: trimmed.toLowerCase() };
    if (response.status !== 403) return refusal(response);
  }
  const response = await fetch("/api/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user, password: secret }),
  });
  if (!response.ok) return refusal(response);
  return { token: (await response.json()).token };
}

const refusal = (response) => ({ status: response.status, retryAfter: Number(response.headers.get("Retry-After")) || 0 });
