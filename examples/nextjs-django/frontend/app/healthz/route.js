// kanri's readiness check for the web app. It does not call the API, so a
// Next.js instance is ready as soon as its own server answers.
export const dynamic = "force-static";

export function GET() {
  return Response.json({ ok: true });
}
