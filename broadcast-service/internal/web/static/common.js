// What every page shares: settings, money and countdown formatting, the
// sign-in (token from the development endpoint, the embedding frame or the
// address fragment), calls to the gateway, and the signed-in user's notices
// from the personal channel. Plain script, no build step. Text from the
// gateway or the services only ever reaches the page through textContent.
(function () {
  'use strict';

  var cfg = window.AUCTION_CONFIG || {};
  var A = window.Auction = {};
  A.cfg = cfg;
  A.gateway = (cfg.gatewayURL || 'http://localhost:8080').replace(/\/+$/, '');
  A.$ = function (id) { return document.getElementById(id); };

  var money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });
  A.fmt = function (amount) { return money.format(Number(amount || 0)); };

  // el builds an element with a class and text; never markup from data.
  A.el = function (tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };

  A.itemLink = function (id, name) {
    var a = A.el('a', 'item-link', name || id);
    a.href = '/items/' + encodeURIComponent(id);
    return a;
  };

  A.validID = function (id) { return /^[A-Za-z0-9_-]{1,64}$/.test(id); };

  // The server's clock, learnt from server_time on WebSocket messages, so
  // countdowns do not depend on the viewer's clock being right.
  A.offset = 0;
  A.now = function () { return Date.now() + A.offset; };
  A.observeClock = function (msg) {
    if (!msg || !msg.server_time) return;
    var off = Date.parse(msg.server_time) - Date.now();
    if (!isNaN(off)) A.offset = off;
  };

  // countdown says how long until endsAt (a Date): text and whether it is
  // soon (under a minute) or over.
  A.countdown = function (endsAt) {
    if (!endsAt || isNaN(endsAt.getTime())) return { text: '—', soon: false, over: false };
    var left = endsAt.getTime() - A.now();
    if (left <= 0) return { text: 'Ending…', soon: false, over: true };
    var s = Math.floor(left / 1000);
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    var pad = function (n) { return (n < 10 ? '0' : '') + n; };
    return { text: (d ? d + 'd ' : '') + pad(h) + ':' + pad(m) + ':' + pad(s % 60), soon: left < 60000, over: false };
  };

  A.wsURL = function (path) {
    return (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + path;
  };

  // backoff is the wait before reconnect attempt n: exponential with
  // jitter, so a restarted instance is not hit by every page at once.
  A.backoff = function (n, max) {
    return Math.min(max || 10000, 500 * Math.pow(2, n)) * (0.5 + Math.random() / 2);
  };

  // ---- Sign-in. The gateway checks the token; the page only reads its
  // subject to know whose name bids go out under and whose notices to
  // follow. The token stays in this tab (memory and sessionStorage), never
  // in a URL a server sees, except as the personal channel's fallback.
  var tokenKey = 'auction-token';
  var auth = null; // { token, user, exp (seconds, or 0) }
  var needSignIn = false;
  var listeners = [];

  A.auth = function () { return auth; };
  A.onAuth = function (fn) { listeners.push(fn); };

  function say(text, cls) {
    var el = A.$('sign-in-result');
    if (!el) return;
    el.textContent = text;
    el.className = 'result small' + (cls ? ' ' + cls : '');
  }
  A.saySignIn = say;

  // claims reads a JWT's payload (base64url JSON) without checking it.
  function claims(token) {
    var parts = String(token).split('.');
    if (parts.length !== 3) return null;
    try {
      var b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      while (b64.length % 4) b64 += '=';
      var bin = atob(b64), bytes = new Uint8Array(bin.length);
      for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      var c = JSON.parse(new TextDecoder().decode(bytes));
      return c && typeof c.sub === 'string' && c.sub ? c : null;
    } catch (err) {
      return null;
    }
  }

  A.expired = function (a) { return a.exp > 0 && a.exp * 1000 <= A.now(); };

  // showAuth updates the header and, on pages that have one, the sign-in
  // form.
  function showAuth() {
    var who = A.$('whoami');
    if (who) {
      who.textContent = auth ? 'Signed in as ' + auth.user : '';
      who.hidden = !auth;
    }
    var user = A.$('user-id');
    if (A.$('signed-in')) A.$('signed-in').hidden = !auth;
    if (auth && A.$('signed-in-user')) A.$('signed-in-user').textContent = auth.user;
    if (user) {
      if (auth) user.value = auth.user;
      user.readOnly = !!auth;
    }
    if (A.$('sign-in-row')) A.$('sign-in-row').hidden = !!auth || !(cfg.devSignIn || needSignIn);
    listeners.forEach(function (fn) { fn(auth); });
  }

  // useToken signs the page in with token; it says why when it cannot.
  A.useToken = function (token) {
    var c = claims(token);
    if (!c) { say('The sign-in token cannot be read.', 'bad'); return false; }
    var a = { token: token, user: c.sub, exp: typeof c.exp === 'number' ? c.exp : 0 };
    if (A.expired(a)) { say('The sign-in token has expired: sign in again.', 'bad'); return false; }
    auth = a;
    try { sessionStorage.setItem(tokenKey, token); } catch (err) { /* memory only */ }
    say('');
    showAuth();
    return true;
  };

  A.signOut = function () {
    auth = null;
    try { sessionStorage.removeItem(tokenKey); } catch (err) { /* nothing stored */ }
    showAuth();
  };

  // needSignIn shows the development sign-in after the gateway asked for a
  // token, and tells an embedding site to send a fresh one.
  A.needSignIn = function () {
    needSignIn = true;
    showAuth();
    A.tellParent('auction-token-expired');
  };

  // The embedding site tells the page who is signed in, from its frame.
  var embedOrigins = cfg.embedOrigins || [];
  function embedAllowed(origin) {
    return origin === location.origin || embedOrigins.indexOf('*') >= 0 || embedOrigins.indexOf(origin) >= 0;
  }
  A.itemId = '';
  A.tellParent = function (type) {
    if (window.parent !== window) window.parent.postMessage({ type: type, item_id: A.itemId }, '*');
  };
  window.addEventListener('message', function (e) {
    var d = e.data;
    if (window.parent === window || e.source !== window.parent || !embedAllowed(e.origin)) return;
    if (!d || d.type !== 'auction-token' || typeof d.token !== 'string') return;
    if (A.useToken(d.token)) say('Signed in by the site as ' + auth.user + '.', 'good');
  });

  // fragmentToken signs in with #token=…, at load or when the embedding
  // site changes the fragment: fragments are not sent to servers. The token
  // is taken out of the address at once, so history and bookmarks do not
  // keep it.
  function fragmentToken() {
    var m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (!m) return false;
    history.replaceState(null, '', location.pathname + location.search);
    var token;
    try { token = decodeURIComponent(m[1]); } catch (err) { token = m[1]; }
    return A.useToken(token);
  }
  window.addEventListener('hashchange', fragmentToken);

  function loadToken() {
    if (fragmentToken()) return;
    var saved = null;
    try { saved = sessionStorage.getItem(tokenKey); } catch (err) { /* none */ }
    if (saved && !A.useToken(saved)) A.signOut();
  }

  // Development sign-in: the gateway issues a token for any user name when
  // it runs with AUTH_DEV_TOKENS=true, and answers 404 otherwise.
  function devSignIn() {
    var name = A.$('user-id').value.trim();
    if (!name) { say('Type the user name to sign in as.', 'bad'); return; }
    A.$('sign-in').disabled = true;
    say('Signing in…');
    fetch(A.gateway + '/api/v1/dev/token', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user_id: name })
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.ok && data.token) {
          if (A.useToken(data.token)) say('Signed in as ' + auth.user + '.', 'good');
        } else if (r.status === 404) {
          say('The gateway offers no development sign-in (AUTH_DEV_TOKENS is off): ' +
            'sign in through the site that shows this page.', 'bad');
        } else {
          say(data.message || data.error || 'Sign-in failed (' + r.status + ').', 'bad');
        }
      });
    }).catch(function () {
      say('Could not reach the gateway at ' + A.gateway + '.', 'bad');
    }).then(function () { A.$('sign-in').disabled = false; });
  }

  // api calls the gateway, with the token when signed in, and resolves to
  // { status, ok, data } whatever the status; it rejects when the gateway
  // cannot be reached or does not answer within opts.timeout ms.
  A.api = function (path, opts) {
    opts = opts || {};
    var headers = {};
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    if (auth && !A.expired(auth)) headers.Authorization = 'Bearer ' + auth.token;
    var init = { method: opts.method || 'GET', headers: headers, body: opts.body };
    if (opts.timeout) {
      var ctl = new AbortController();
      setTimeout(function () { ctl.abort(); }, opts.timeout);
      init.signal = ctl.signal;
    }
    return fetch(A.gateway + path, init)
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (data) {
          return { status: r.status, ok: r.ok, data: data || {} };
        });
      });
  };

  // errorText is the gateway's reason in an answer, whichever field it
  // uses.
  A.errorText = function (res) {
    return res.data.error || res.data.message || 'the gateway answered ' + res.status;
  };

  // ---- Notices from the personal channel (WS /ws/users/{id}), on every
  // page while signed in. The token goes as the WebSocket subprotocol pair
  // "access_token", <jwt>: browsers cannot set headers on a WebSocket, and
  // a query parameter would land in access logs.
  var personal = { ws: null, user: null, attempts: 0, timer: null };
  var noticeListeners = [];
  A.onNotice = function (fn) { noticeListeners.push(fn); };

  function noticeBox() {
    var box = A.$('notices');
    if (!box) {
      box = A.el('div', 'toasts');
      box.id = 'notices';
      box.setAttribute('aria-live', 'polite');
      box.setAttribute('aria-label', 'Notices');
      document.body.appendChild(box);
    }
    return box;
  }

  // noticeText says what a personal message means to the signed-in user.
  function noticeText(m) {
    var name = m.item_name || m.item_id;
    switch (m.type) {
      case 'outbid':
        return { title: 'You were outbid', text: name + ': now ' + A.fmt(m.current_bid) + (m.bidder_id ? ' by ' + m.bidder_id : '') + '.' };
      case 'auction_won':
        return { title: 'You won', text: name + ' for ' + A.fmt(m.final_price) + '.' };
      case 'auction_lost':
        return { title: 'Auction ended', text: name + (m.winner_id ? ' went to ' + m.winner_id + ' for ' + A.fmt(m.final_price) : ' closed without a winner') + '.' };
      case 'auction_ending_soon':
        return { title: 'Ending soon', text: name + ': you lead at ' + A.fmt(m.current_bid) + '.' };
      case 'auction_cancelled':
        return { title: 'Auction cancelled', text: name + ' was cancelled: your bids on it no longer count.' };
    }
    return null;
  }

  // The channel names items from the gateway, but a notice comes without a
  // name when the gateway did not answer it in time; the page asks once
  // more. Names never change, so each is asked for once.
  var itemNames = {};
  function withItemName(m) {
    if (m.item_name || !m.item_id || !A.validID(m.item_id)) return Promise.resolve(m);
    if (!itemNames[m.item_id]) {
      itemNames[m.item_id] = A.api('/api/v1/items/' + encodeURIComponent(m.item_id), { timeout: 3000 })
        .then(function (res) { return res.ok && res.data.name ? res.data.name : ''; })
        .catch(function () { return ''; });
    }
    return itemNames[m.item_id].then(function (name) {
      if (!name) delete itemNames[m.item_id];
      m.item_name = name;
      return m;
    });
  }

  A.showNotice = function (m) {
    var n = noticeText(m);
    if (!n) return;
    var t = A.el('div', 'toast toast-' + m.type.replace(/_/g, '-'));
    t.setAttribute('role', m.type === 'outbid' ? 'alert' : 'status');
    t.dataset.type = m.type;
    if (m.item_id) t.dataset.itemId = m.item_id;
    t.appendChild(A.el('b', 'toast-title', n.title));
    var body = A.el('span', 'toast-text', ' ' + n.text + ' ');
    t.appendChild(body);
    if (m.item_id && A.validID(m.item_id) && m.item_id !== A.itemId) {
      t.appendChild(A.itemLink(m.item_id, 'Open'));
    }
    var close = A.el('button', 'toast-close', '×');
    close.type = 'button';
    close.setAttribute('aria-label', 'Dismiss');
    close.addEventListener('click', function () { t.remove(); });
    t.appendChild(close);
    var box = noticeBox();
    box.insertBefore(t, box.firstChild);
    while (box.children.length > 5) box.removeChild(box.lastChild);
  };

  function closePersonal() {
    clearTimeout(personal.timer);
    if (personal.ws) {
      personal.ws.onclose = null;
      personal.ws.close();
    }
    personal.ws = null;
    personal.user = null;
  }

  function openPersonal() {
    var a = auth;
    if (!a || A.expired(a)) { closePersonal(); return; }
    if (personal.ws && personal.user === a.user) return;
    closePersonal();
    personal.user = a.user;
    var ws = new WebSocket(A.wsURL('/ws/users/' + encodeURIComponent(a.user)), ['access_token', a.token]);
    personal.ws = ws;
    ws.onmessage = function (e) {
      personal.attempts = 0;
      var m;
      try { m = JSON.parse(e.data); } catch (err) { return; }
      A.observeClock(m);
      withItemName(m).then(function (m) {
        A.showNotice(m);
        noticeListeners.forEach(function (fn) { fn(m); });
      });
    };
    ws.onclose = function () {
      personal.ws = null;
      // Up to a minute: a refused token or a service without the channel
      // keeps failing, and there is no hurry for notices.
      personal.timer = setTimeout(openPersonal, A.backoff(personal.attempts++, 60000));
    };
  }
  A.onAuth(function (a) {
    if (!a) closePersonal();
    else if (!personal.ws || personal.user !== a.user) openPersonal();
  });

  // start wires the sign-in form, where the page has one, and signs in
  // with a token the tab or the address holds. Pages call it once their
  // own listeners are registered.
  A.start = function () {
    if (A.$('sign-in')) A.$('sign-in').addEventListener('click', devSignIn);
    if (A.$('sign-out')) A.$('sign-out').addEventListener('click', function () {
      A.signOut();
      say('Signed out.');
    });
    noticeBox();
    loadToken();
    showAuth();
    A.tellParent('auction-ready');
  };
})();
