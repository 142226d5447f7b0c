// 会员中心: the member's tier and points, kept live by the member's events.

const { FORBIDDEN, request, liveClient } = require('../../utils/tierup.js');

const DASHBOARD_MEMBER = `
  fragment DashboardMember on Member {
    id
    displayName
    tier { id code name }
    points { id balance expiringSoon }
    nextTier { tier { id code name } conditions { description current target met } }
  }`;

const DASHBOARD = `query Dashboard { viewer { ...DashboardMember } } ${DASHBOARD_MEMBER}`;

const MEMBER_EVENTS = `
  subscription MemberEvents {
    memberEvents { kind message at member { ...DashboardMember } }
  } ${DASHBOARD_MEMBER}`;

const app = getApp();

Page({
  data: {
    member: null,
    events: [], // the latest first, at most 20
    live: 'off', // off, connecting, on, refused
    closeCode: null,
    notice: '',
  },

  onLoad() {
    const { apiUrl } = app.globalData;
    this.socket = liveClient(apiUrl, () => app.globalData.token, {
      connecting: () => this.setData({ live: 'connecting' }),
      connected: () => this.setData({ live: 'on' }),
      closed: (event) => this.setData({ closeCode: event.code }),
    });
    this.stopEvents = this.socket.subscribe({ query: MEMBER_EVENTS }, {
      next: ({ data }) => {
        if (!data) return;
        const { kind, message, at, member } = data.memberEvents;
        // Each event carries the dashboard's fields: draw them, no refetch.
        this.setData({ member, events: [{ id: `${kind}@${at}`, kind, message, at }, ...this.data.events].slice(0, 20) });
      },
      error: (error) => {
        if (error && error.code === FORBIDDEN) {
          this.setData({ live: 'refused', notice: '登录已过期，请重新登录' }); // sign in again
        } else {
          this.setData({ live: 'off', notice: '实时更新已断开，下拉刷新' }); // pull to refresh
        }
      },
      complete: () => {},
    });
    this.loaded = this.loadDashboard();
  },

  onUnload() {
    if (this.stopEvents) this.stopEvents();
    if (this.socket) this.socket.dispose();
  },

  onPullDownRefresh() {
    this.loadDashboard().then(() => wx.stopPullDownRefresh());
  },

  loadDashboard() {
    const { apiUrl, token } = app.globalData;
    return request(apiUrl, token, DASHBOARD).then(
      ({ data, errors }) => {
        if (errors) {
          this.setData({ notice: errors.map((e) => (e.extensions && e.extensions.code) || e.message).join(', ') });
        } else {
          this.setData({ member: data.viewer });
        }
      },
      (error) => this.setData({ notice: `网络错误 ${error.message}` }), // network error
    );
  },
});
