import path from "node:path";
import { fileURLToPath } from "node:url";

/** @type {import('next').NextConfig} */
const nextConfig = {
  // kanri's proxy is the public face; don't advertise the framework behind it.
  poweredByHeader: false,
  // This folder is the app's root even inside the kanri repository.
  turbopack: { root: path.dirname(fileURLToPath(import.meta.url)) },
};

export default nextConfig;
