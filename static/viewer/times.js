// Times: one format everywhere, 24-hour ISO 8601 ("2024-05-05 14:22:21.123"), shown in UTC or
// in this browser's local time. The choice is a toggle remembered on this device. The wire
// (API and URL) always carries UTC ISO strings with "Z".
"use strict";

const KEY = "bls.zone";
let zone = localStorage.getItem(KEY) === "local" ? "local" : "utc";
const listeners = [];

export const MINUTE = 60e3;
export const HOUR = 3600e3;
export const DAY = 86400e3;

/** "utc" or "local". */
export const getZone = () => zone;

/** Switch the display zone, remember it, and tell every listener. */
export function setZone(next) {
  zone = next === "local" ? "local" : "utc";
  localStorage.setItem(KEY, zone);
  for (const listener of listeners) listener(zone);
}

/** Call `listener(zone)` whenever the display zone changes. */
export const onZoneChange = (listener) => listeners.push(listener);

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** Minutes to add to UTC to get the display zone's wall time at `ms`. */
export const offsetMinutes = (ms) => (zone === "utc" ? 0 : -new Date(ms).getTimezoneOffset());

/** "UTC" or "UTC+02:00" (the local offset now). */
export function zoneLabel() {
  const offset = offsetMinutes(Date.now());
  if (zone === "utc") return "UTC";
  const sign = offset < 0 ? "-" : "+";
  return "UTC" + sign + pad(Math.floor(Math.abs(offset) / 60)) + ":" + pad(Math.abs(offset) % 60);
}

/** `ms` as "YYYY-MM-DD HH:MM:SS.mmm" in the display zone, cut to `unit`. */
export function format(ms, unit = "ms") {
  const d = new Date(ms + offsetMinutes(ms) * MINUTE); // read back with the UTC getters
  const date = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
  if (unit === "day") return date;
  const minutes = date + " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
  if (unit === "minute") return minutes;
  const seconds = minutes + ":" + pad(d.getUTCSeconds());
  return unit === "second" ? seconds : seconds + "." + pad(d.getUTCMilliseconds(), 3);
}

/** A wire timestamp ("...Z", microseconds allowed) as milliseconds since the epoch. */
export function parseWire(iso) {
  const text = String(iso);
  return Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(text) ? text : text + "Z");
}

/** Milliseconds as the wire's UTC ISO string, without milliseconds when they are zero. */
export function toWire(ms) {
  const iso = new Date(ms).toISOString();
  return iso.endsWith(".000Z") ? iso.slice(0, 19) + "Z" : iso;
}

/** A wire timestamp in the display format. */
export const formatWire = (iso) => format(parseWire(iso));

const INPUT = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?$/;

/**
 * What a person typed ("2024-05-05", "2024-05-05 14:22", "2024-05-05 14:22:21.5") as
 * milliseconds, read in the display zone; NaN when it is not such a time or does not exist.
 */
export function parseInput(text) {
  const m = INPUT.exec(String(text).trim());
  if (!m) return NaN;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map((v) => Number(v || 0));
  const millis = Number((m[7] || "0").padEnd(3, "0"));
  const wall = Date.UTC(year, month - 1, day, hour, minute, second, millis);
  const back = new Date(wall);
  if (back.getUTCMonth() !== month - 1 || back.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) {
    return NaN;
  }
  // The zone's offset at that wall time (twice: the first guess may sit across a DST change).
  let ms = wall - offsetMinutes(wall) * MINUTE;
  ms = wall - offsetMinutes(ms) * MINUTE;
  return ms;
}

/** Milliseconds as an input's text: seconds, and milliseconds only when there are some. */
export function toInput(ms) {
  return format(ms, ms % 1000 === 0 ? "second" : "ms").replace(/:00$/, "");
}
