// The mini-program's app: where the member API lives and the signed-in member's token.
App({
  globalData: {
    apiUrl: 'https://member.example.com/graphql',
    // A MEMBER token for the shopper, minted by the shop's back end after wx.login (tierup never
    // sees WeChat's login code or openid). Keep it fresh: a socket closes with 4403 at its exp.
    token: '',
  },
});
