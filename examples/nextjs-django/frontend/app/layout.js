import Link from "next/link";

export const metadata = {
  title: "kanri: Next.js + Django",
  description: "A Next.js frontend and a Django API behind kanri's proxy.",
};

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <head>
        {/* Collected by Django's collectstatic, served from disk by kanri's /static/ route. */}
        <link rel="stylesheet" href="/static/items/site.css" />
      </head>
      <body>
        <main>
          <header>
            <img src="/static/items/logo.svg" alt="" />
            <h1>kanri: Next.js + Django</h1>
          </header>
          <nav>
            <Link href="/">Rendered on the server</Link>
            <Link href="/client">Fetched by the browser</Link>
          </nav>
          {children}
        </main>
      </body>
    </html>
  );
}
