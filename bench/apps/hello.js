// The Node.js app of the benchmarks: "hello, world" on $PORT, keep-alive, graceful stop.
// Under PM2 cluster mode the instances share $PORT through the cluster module.
const http = require("http");

const body = Buffer.from("hello, world\n");
const server = http.createServer((req, res) => {
  if (req.method === "POST") req.resume();
  res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": body.length });
  res.end(body);
});
server.listen(Number(process.env.PORT), "127.0.0.1");

function stop() {
  // Finish what is in flight, then exit; PM2 sends SIGINT, kanri SIGTERM.
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
