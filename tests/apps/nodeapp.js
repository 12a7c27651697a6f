// A small Node.js HTTP app for tests: answers every request with its env as JSON.
const http = require("http");

const port = Number(process.env.PORT);
const server = http.createServer((req, res) => {
  const body = JSON.stringify({
    pid: process.pid,
    port: process.env.PORT,
    app: process.env.KANRI_APP,
    instance: process.env.KANRI_INSTANCE,
    node_app_instance: process.env.NODE_APP_INSTANCE,
  });
  res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
  res.end(body);
});
server.listen(port, "127.0.0.1", () => console.log(`node listening on ${port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
