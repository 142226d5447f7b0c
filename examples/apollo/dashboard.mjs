// A member's dashboard with Apollo Client: the query over HTTP with automatic persisted queries
// (once the server knows the query, a GET carries only its hash), and live updates over graphql-ws
// that land in the same normalised cache, so the dashboard shows the new balance without a refetch.
//
//   cd examples && npm install
//   TIERUP_TOKEN=<a MEMBER token> node apollo/dashboard.mjs
//
// TIERUP_URL names the server (default http://127.0.0.1:8000/graphql); TIERUP_EVENTS=N stops after
// N live events (default: run until Ctrl-C). Exit status: 0 after N events, 1 when live updates
// stopped (the token was refused, or the socket could not be kept), 64 without a token.

import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { createClient } from "graphql-ws";
import WebSocket from "ws"; // Node 20 has no global WebSocket; in a browser, leave webSocketImpl out

const url = process.env.TIERUP_URL ?? "http://127.0.0.1:8000/graphql";
const token = process.env.TIERUP_TOKEN;
const stopAfter = Number(process.env.TIERUP_EVENTS || Infinity);
if (!token) {
  console.error("Set TIERUP_TOKEN to a MEMBER token, e.g. from `tierup token --role MEMBER --program classic --sub demo-member`.");
  process.exit(64);
}

// One fragment for what the dashboard shows: the query reads it, and every live event carries it,
// so each event rewrites the Member (and its PointsAccount, by their ids) in the cache.
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

// Automatic persisted queries want the query's SHA-256 in hex; Web Crypto has it in browsers and Node.
async function sha256(text) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

// Logs each HTTP request, to show the persisted queries at work: the hash alone, and the query's
// text with it only the first time, when the server does not know the hash yet.
async function loggedFetch(input, init = {}) {
  const method = init.method ?? "GET";
  const withText = method === "GET" ? new URL(input).searchParams.has("query") : "query" in JSON.parse(init.body);
  const response = await fetch(input, init);
  console.log(`http: ${method} ${response.status} (${withText ? "with the query text" : "hash only"})`);
  return response;
}

const http = new HttpLink({ uri: url, fetch: loggedFetch, headers: { Authorization: `Bearer ${token}` } });
const persisted = new PersistedQueryLink({ sha256, useGETForHashedQueries: true });

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

const client = new ApolloClient({
  link: ApolloLink.split(
    (operation) => operation.operationType === "subscription",
    new GraphQLWsLink(socket),
    persisted.concat(http),
  ),
  cache: new InMemoryCache({
    // TierProgress has no id: it belongs to its Member. Merging a newer one into the cached one is
    // safe (every event carries all its fields) and spares Apollo's "cache data may be lost" warning.
    typePolicies: { TierProgress: { merge: true } },
  }),
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
  if (error?.errors) return error.errors.map((e) => `${e.extensions?.code ?? "ERROR"} ${e.message}`).join("; ");
  return error?.message ?? String(error);
}

// The screen opens: the query and the live updates start together, as a UI's hooks would.
const dashboard = client.query({ query: DASHBOARD }).then(
  ({ data }) => render(data.viewer),
  (error) => console.log(`dashboard: ${describe(error)}`),
);

let received = 0;
const live = client.subscribe({ query: MEMBER_EVENTS }).subscribe({
  next: ({ data, error }) => {
    if (error) return stop(1, `live updates stopped: ${describe(error)}`);
    const { kind, message } = data.memberEvents;
    console.log(`event: ${kind} ${message}`);
    // The event already updated the cache: read the dashboard from it, no request sent.
    render(client.readQuery({ query: DASHBOARD })?.viewer);
    if (++received >= stopAfter) stop(0);
  },
  complete: () => stop(1, "live updates ended"),
});

let stopping = false;
async function stop(status, why) {
  if (stopping) return;
  stopping = true;
  if (why) console.log(why);
  live.unsubscribe();
  await dashboard;
  await socket.dispose();
  client.stop();
  process.exit(status);
}

process.on("SIGINT", () => stop(0));
