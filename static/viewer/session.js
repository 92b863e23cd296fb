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
