// The member API from a mini-program: queries over wx.request, live updates over graphql-ws on a
// SocketTask. Copy graphql-ws's UMD build to vendor/graphql-ws.js (see examples/README.md).

const { createClient } = require('../vendor/graphql-ws.js');
const SocketTaskWebSocket = require('./socket-task-websocket.js');

const FORBIDDEN = 4403; // the token was refused, or it expired on an open socket

// A GraphQL query or mutation over HTTP; resolves to the answer's { data, errors }.
function request(apiUrl, token, query, variables) {
  return new Promise((resolve, reject) => {
    wx.request({
      url: apiUrl,
      method: 'POST',
      header: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      data: { query, variables },
      success: (res) => resolve(res.data),
      fail: (res) => reject(new Error(res.errMsg)),
    });
  });
}

// A graphql-ws client on wx.connectSocket. getToken is called for every connection, so a retry
// after a dropped network uses the freshest token the app has.
function liveClient(apiUrl, getToken, on) {
  return createClient({
    url: apiUrl.replace(/^http/, 'ws'),
    webSocketImpl: SocketTaskWebSocket,
    connectionParams: () => ({ Authorization: `Bearer ${getToken()}` }),
    // graphql-ws retries a 4403 with the same token (about 40 s at the defaults) before it gives up:
    // stop at once instead and send the member to sign in again. Anything else graphql-ws does not
    // hold fatal (the app back from the background, a dropped network) is retried.
    shouldRetry: (errorOrClose) => !(errorOrClose && errorOrClose.code === FORBIDDEN),
    retryAttempts: 5,
    on,
  });
}

module.exports = { FORBIDDEN, request, liveClient };
