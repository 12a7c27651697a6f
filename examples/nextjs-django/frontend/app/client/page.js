import ClientItems from "./client-items";

export const metadata = { title: "kanri: items fetched by the browser" };

export default function ClientPage() {
  return (
    <>
      <h2>Items fetched by the browser</h2>
      <ClientItems />
    </>
  );
}
