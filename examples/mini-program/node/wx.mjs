// Just enough of the mini-program runtime to run a page under Node: wx.connectSocket on the `ws`
// package, wx.request on fetch, App, Page and getApp. Each socket opened and each setData is printed,
// one line each, so a test can follow the page.

import WebSocket from "ws";

export const pending = new Set(); // requests not answered yet

export function installMiniProgramRuntime(print) {
  let app = null;
  let page = null;
  globalThis.App = (definition) => { app = definition; };
  globalThis.getApp = () => app;
  globalThis.Page = (definition) => { page = definition; };
  globalThis.wx = {
    connectSocket({ url, header, protocols, fail }) {
      print("wx.connectSocket", { url, protocols });
      const listeners = { open: [], message: [], error: [], close: [] };
      const emit = (kind, value) => listeners[kind].forEach((listener) => listener(value));
      const socket = new WebSocket(url, protocols, { headers: header });
      socket.on("open", () => emit("open", { header: {} }));
      socket.on("message", (data, isBinary) => emit("message", { data: isBinary ? data : data.toString() }));
      socket.on("error", (error) => emit("error", { errMsg: `connectSocket:fail ${error.message}` }));
      socket.on("close", (code, reason) => emit("close", { code, reason: reason.toString() }));
      return {
        send: ({ data }) => socket.send(data),
        close: ({ code, reason } = {}) => socket.close(code, reason),
        onOpen: (listener) => listeners.open.push(listener),
        onMessage: (listener) => listeners.message.push(listener),
        onError: (listener) => listeners.error.push(listener),
        onClose: (listener) => listeners.close.push(listener),
      };
    },
    request({ url, method = "GET", header = {}, data, success, fail, complete }) {
      const answered = fetch(url, { method, headers: header, body: method === "GET" ? undefined : JSON.stringify(data) })
        .then(async (response) => ({ statusCode: response.status, data: await response.json(), header: {} }))
        .then((res) => success?.(res), (error) => fail?.({ errMsg: `request:fail ${error.message}` }))
        .finally(() => { pending.delete(answered); complete?.(); });
      pending.add(answered);
      return { abort() {} };
    },
    stopPullDownRefresh() {},
  };
  return {
    app: () => app,
    // A page as the runtime makes it: its definition's methods, its data, and setData.
    open(query = {}) {
      const instance = Object.create(page);
      instance.data = structuredClone(page.data);
      instance.setData = (patch) => {
        Object.assign(instance.data, patch);
        print("setData", patch);
      };
      instance.onLoad?.(query);
      return instance;
    },
  };
}
