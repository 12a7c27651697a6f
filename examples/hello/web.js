// A tiny Node.js web server: the home page, rendered on each request.
const http = require("http");

const port = Number(process.env.PORT);
http
  .createServer((req, res) => {
    console.log(`${req.method} ${req.url}`);
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><title>kanri hello</title>
<h1>Hello from web instance ${process.env.KANRI_INSTANCE}</h1>
<p>The API is at <a href="/api/hello">/api/hello</a>.</p>`);
  })
  .listen(port, "127.0.0.1", () => console.log(`web instance ${process.env.KANRI_INSTANCE} listening on ${port}`));
process.on("SIGTERM", () => process.exit(0));
