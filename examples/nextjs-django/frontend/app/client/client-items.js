"use client";

import { useEffect, useState } from "react";
import Items from "../items";

// The browser calls /api/v1/data on the page's own origin: kanri's proxy
// sends /api/ to Django, so there is no CORS and no second hostname.
export default function ClientItems() {
  const [state, setState] = useState({ status: "loading" });

  useEffect(() => {
    let cancelled = false;
    fetch("/api/v1/data", { cache: "no-store" })
      .then((res) => {
        if (!res.ok) throw new Error(`GET /api/v1/data answered ${res.status}`);
        return res.json();
      })
      .then((data) => !cancelled && setState({ status: "done", data }))
      .catch((error) => !cancelled && setState({ status: "error", error: String(error) }));
    return () => {
      cancelled = true;
    };
  }, []);

  if (state.status === "loading") return <p id="client-status">Loading…</p>;
  if (state.status === "error") return <p id="client-status">{state.error}</p>;
  return (
    <div id="client-items" data-count={state.data.items.length}>
      <Items items={state.data.items} />
      <p className="meta">Served by {state.data.served_by}.</p>
    </div>
  );
}
