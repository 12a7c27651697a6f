import { fetchItems } from "./api";
import Items from "./items";

// Rendered on each request, never at build time: the data lives in Django.
export const dynamic = "force-dynamic";

export default async function Home() {
  const data = await fetchItems();
  return (
    <>
      <h2>Items from the Django API</h2>
      <Items items={data.items} />
      <p className="meta" id="rendered-by">
        Rendered by Next.js instance web:{process.env.KANRI_INSTANCE ?? "?"} (pid {process.pid})
        with data from {data.served_by} at {data.generated_at}.
      </p>
    </>
  );
}
