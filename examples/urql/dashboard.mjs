// A member's dashboard with urql: the query over HTTP with automatic persisted queries, and live
// updates over graphql-ws through urql's subscriptionExchange. urql's default cache keeps whole
// answers, not objects, so each live event carries the dashboard's fields and the screen is drawn
// from it (with @urql/exchange-graphcache, the ids of Member and PointsAccount update it in place).
//
//   cd examples && npm install
//   TIERUP_TOKEN=<a MEMBER token> node urql/dashboard.mjs
//
// TIERUP_URL names the server (default http://127.0.0.1:8000/graphql); TIERUP_EVENTS=N stops after
// N live events (default: run until Ctrl-C). Exit status: 0 after N events, 1 when live updates
// stopped (the token was refused, or the socket could not be kept), 64 without a token.

import { Client, cacheExchange, fetchExchange, gql, subscriptionExchange } from "@urql/core";
import { persistedExchange } from "@urql/exchange-persisted";
import { createClient } from "graphql-ws";
import WebSocket from "ws"; // Node 20 has no global WebSocket; in a browser, leave webSocketImpl out

const url = process.env.TIERUP_URL ?? "http://127.0.0.1:8000/graphql";
const token = process.env.TIERUP_TOKEN;
const stopAfter = Number(process.env.TIERUP_EVENTS || Infinity);
if (!token) {
  console.error("Set TIERUP_TOKEN to a MEMBER token, e.g. from `tierup token --role MEMBER --program classic --sub demo-member`.");
  process.exit(64);
}

const DASHBOARD_MEMBER = gql`
  fragment DashboardMember on Member {
    id
    displayName
    tier { id code name }
    points { id balance expiringSoon }
    nextTier { tier { id code name } conditions { description current target met } }
  }
`;

const DASHBOARD = gql`
  query Dashboard {
    viewer { ...DashboardMember }
  }
  ${DASHBOARD_MEMBER}
`;

const MEMBER_EVENTS = gql`
  subscription MemberEvents {
    memberEvents { kind message at member { ...DashboardMember } }
  }
  ${DASHBOARD_MEMBER}
`;

// Logs each HTTP request, to show the persisted queries at work: the hash alone, and the query's
// text with it only the first time, when the server does not know the hash yet.
async function loggedFetch(input, init = {}) {
  const method = init.method ?? "GET";
  const withText = method === "GET" ? new URL(input).searchParams.has("query") : "query" in JSON.parse(init.body);
  const response = await fetch(input, init);
  console.log(`http: ${method} ${response.status} (${withText ? "with the query text" : "hash only"})`);
  return response;
}

const isCloseEvent = (value) => typeof value === "object" && value !== null && "code" in value && "reason" in value;

const socket = createClient({
  url: url.replace(/^http/, "ws"),
  webSocketImpl: WebSocket,
  connectionParams: () => ({ Authorization: `Bearer ${token}` }),
  // 4403 means the server refused the token (missing, expired, forged) or the token expired on an
  // open socket. graphql-ws counts 4403 as retryable and would try the same token again
  // retryAttempts times (about 40 s at the defaults) before giving up; that cannot succeed, so give
  // up at once and let the app get a fresh token. Everything else graphql-ws does not hold fatal (a
  // restart, a dropped network, a failed connect) is retried with backoff, retryAttempts times.
  shouldRetry: (errorOrClose) => !(isCloseEvent(errorOrClose) && errorOrClose.code === 4403),
  retryAttempts: 5,
  on: {
    connecting: (isRetry) => console.log(`socket: connecting${isRetry ? " again" : ""}`),
    connected: () => console.log("socket: connected"),
    closed: (event) => isCloseEvent(event) && console.log(`socket: closed ${event.code} ${event.reason}`),
  },
});

const client = new Client({
  url,
  fetch: loggedFetch,
  fetchOptions: () => ({ headers: { Authorization: `Bearer ${token}` } }),
  exchanges: [
    cacheExchange,
    persistedExchange({ preferGetForPersistedQueries: true }),
    fetchExchange,
    subscriptionExchange({
      forwardSubscription(request) {
        const operation = { ...request, query: request.query || "" };
        return { subscribe: (sink) => ({ unsubscribe: socket.subscribe(operation, sink) }) };
      },
    }),
  ],
});

function render(member) {
  if (!member) return;
  const next = member.nextTier
    ? `; next ${member.nextTier.tier.code}: ` +
      member.nextTier.conditions.map((c) => `${c.description} (${c.current} of ${c.target})`).join(", ")
    : "";
  console.log(`dashboard: ${member.displayName ?? "member"}, ${member.tier.name} (${member.tier.code}), ` +
              `${member.points.balance} points${next}`);
}

function describe(error) {
  if (error.graphQLErrors?.length) {
    return error.graphQLErrors.map((e) => `${e.extensions?.code ?? "ERROR"} ${e.message}`).join("; ");
  }
  const cause = error.networkError;
  return isCloseEvent(cause) ? `socket closed with ${cause.code} ${cause.reason}` : error.message;
}

// The screen opens: the query and the live updates start together, as a UI's hooks would.
const dashboard = client.query(DASHBOARD, {}).toPromise().then(({ data, error }) =>
  error ? console.log(`dashboard: ${describe(error)}`) : render(data.viewer));

let received = 0;
const live = client.subscription(MEMBER_EVENTS, {}).subscribe(({ data, error }) => {
  if (error) return stop(1, `live updates stopped: ${describe(error)}`);
  const { kind, message, member } = data.memberEvents;
  console.log(`event: ${kind} ${message}`);
  render(member);
  if (++received >= stopAfter) stop(0);
});

let stopping = false;
async function stop(status, why) {
  if (stopping) return;
  stopping = true;
  if (why) console.log(why);
  live.unsubscribe();
  await dashboard;
  await socket.dispose();
  process.exit(status);
}

process.on("SIGINT", () => stop(0));
