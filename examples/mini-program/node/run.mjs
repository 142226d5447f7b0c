// Runs the member page under Node against a real server, as the mini-program would run it:
//
//   cd examples && npm install && cp node_modules/graphql-ws/umd/graphql-ws.min.js mini-program/vendor/graphql-ws.js
//   TIERUP_TOKEN=<a MEMBER token> node mini-program/node/run.mjs
//
// TIERUP_URL names the server (default http://127.0.0.1:8000/graphql); TIERUP_EVENTS=N closes the
// page after N live events. The page is also closed when its live updates stop (a refused token).
// Prints one JSON line per socket opened and per setData.

import { createRequire } from "node:module";

import { installMiniProgramRuntime, pending } from "./wx.mjs";

const require = createRequire(import.meta.url);
const stopAfter = Number(process.env.TIERUP_EVENTS || Infinity);

const runtime = installMiniProgramRuntime((what, value) => {
  console.log(JSON.stringify({ [what]: value }));
  if (what === "setData") setTimeout(check); // after the page's own handler has finished
});
require("../app.js");
Object.assign(runtime.app().globalData, {
  apiUrl: process.env.TIERUP_URL ?? "http://127.0.0.1:8000/graphql",
  token: process.env.TIERUP_TOKEN ?? "",
});
require("../pages/member/member.js");
const page = runtime.open();

let closing = false;
async function check() {
  const { events, live } = page.data;
  if (closing || (events.length < stopAfter && live !== "refused" && live !== "off")) return;
  closing = true;
  await Promise.all(pending);
  page.onUnload();
  process.exit(live === "refused" || live === "off" ? 1 : 0);
}
