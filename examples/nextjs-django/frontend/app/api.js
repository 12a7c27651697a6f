// Server-side calls go through kanri's proxy, like the browser's: KANRI_URL is
// the proxy's own address, which kanri gives every app it runs. Without kanri
// (plain `next start`), the default is where the example's proxy listens.
const KANRI_URL = process.env.KANRI_URL || "http://127.0.0.1:8080";

export async function fetchItems() {
  const url = `${KANRI_URL}/api/v1/data`;
  // no-store: ask Django on every request instead of caching the answer.
  const res = await fetch(url, { cache: "no-store" });
  if (!res.ok) {
    throw new Error(`GET ${url} answered ${res.status}`);
  }
  return res.json();
}
