// A WebSocket-shaped wrapper around a mini-program SocketTask (wx.connectSocket), so that
// graphql-ws's createClient can take it as webSocketImpl. graphql-ws uses: new (url, protocol),
// readyState and the four state constants, onopen / onmessage / onerror / onclose, send(text) and
// close(code, reason).

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

class SocketTaskWebSocket {
  constructor(url, protocols) {
    this.url = url;
    this.protocol = '';
    this.readyState = CONNECTING;
    this.onopen = null;
    this.onmessage = null;
    this.onerror = null;
    this.onclose = null;
    this.task = wx.connectSocket({
      url,
      protocols: [].concat(protocols || []), // graphql-ws asks for 'graphql-transport-ws'
      fail: (res) => this.handleClose({ code: 1006, reason: res.errMsg }),
    });
    this.task.onOpen(() => {
      this.readyState = OPEN;
      if (this.onopen) this.onopen({ type: 'open' });
    });
    this.task.onMessage(({ data }) => {
      if (this.onmessage) this.onmessage({ type: 'message', data });
    });
    this.task.onError((res) => {
      if (this.onerror) this.onerror({ type: 'error', message: res.errMsg });
    });
    this.task.onClose((res) => this.handleClose(res));
  }

  handleClose({ code, reason }) {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    // The close code is what tells a refused token (4403) from a dropped network (1006).
    if (this.onclose) this.onclose({ type: 'close', code: code || 1006, reason: reason || '', wasClean: code === 1000 });
  }

  send(data) {
    this.task.send({ data });
  }

  close(code, reason) {
    if (this.readyState === CLOSING || this.readyState === CLOSED) return;
    this.readyState = CLOSING;
    this.task.close({ code, reason });
  }
}

SocketTaskWebSocket.CONNECTING = CONNECTING;
SocketTaskWebSocket.OPEN = OPEN;
SocketTaskWebSocket.CLOSING = CLOSING;
SocketTaskWebSocket.CLOSED = CLOSED;

module.exports = SocketTaskWebSocket;
