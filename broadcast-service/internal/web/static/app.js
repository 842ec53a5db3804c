// Live auction page: one WebSocket to the broadcast service, a bid form that
// posts to the API gateway. Plain script, no build step.
(function () {
  'use strict';

  var cfg = window.AUCTION_CONFIG || {};
  var gateway = (cfg.gatewayURL || 'http://localhost:8080').replace(/\/+$/, '');
  var itemId = decodeURIComponent(location.pathname.split('/').pop() || '');
  var $ = function (id) { return document.getElementById(id); };

  var money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });
  var state = {
    listSeq: null,   // seq of the newest event in the list (resume point)
    shownSeq: -1,    // seq of the state shown in the header
    endsAt: null,    // Date
    offset: 0,       // server clock minus local clock, ms
    status: '',
    attempts: 0,
    bids: 0,
    needSignIn: false // the gateway asked for a sign-in
  };

  $('item-id').textContent = itemId;
  $('name').textContent = itemId;
  document.title = itemId + ' · Live auction';

  function fmt(amount) { return money.format(Number(amount || 0)); }

  function setConn(text, cls) {
    var el = $('conn');
    el.textContent = text;
    el.className = 'pill ' + cls;
  }

  function notice(text) {
    var el = $('notice');
    el.textContent = text;
    el.hidden = false;
  }

  function setEnds(v) {
    if (v) state.endsAt = new Date(v);
  }

  function setStatus(s) {
    if (!s) return;
    state.status = s;
    $('status').textContent = s === 'unknown' ? '' : s;
    document.body.classList.toggle('closed', s === 'closed' || s === 'cancelled');
  }

  function showPrice(amount, bidder, seq) {
    if (seq < state.shownSeq) return;
    state.shownSeq = seq;
    var p = $('price');
    p.textContent = fmt(amount);
    $('bidder').textContent = bidder ? 'by ' + bidder : 'No bids yet';
    $('seq').textContent = seq;
    p.classList.remove('flash');
    void p.offsetWidth; // restart the highlight animation
    p.classList.add('flash');
  }

  function addBid(ev) {
    $('no-bids').hidden = true;
    var li = document.createElement('li');
    var when = new Date(ev.timestamp);
    li.innerHTML = '<span class="amt"></span><span class="who"></span><time></time>';
    li.querySelector('.amt').textContent = fmt(ev.amount);
    li.querySelector('.who').textContent = ev.user_id;
    li.querySelector('time').textContent = isNaN(when) ? '' : when.toLocaleTimeString();
    li.dataset.seq = ev.seq;
    var list = $('bids');
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 100) list.removeChild(list.lastChild);
  }

  function onMessage(msg) {
    if (msg.server_time) {
      var off = Date.parse(msg.server_time) - Date.now();
      if (!isNaN(off)) state.offset = off;
    }
    switch (msg.type) {
      case 'snapshot':
        if (state.listSeq === null) state.listSeq = msg.seq;
        if (msg.seq > 0) showPrice(msg.current_bid, msg.highest_bidder_id, msg.seq);
        setEnds(msg.ends_at);
        setStatus(msg.status);
        if (msg.bid_count) $('bid-count').textContent = msg.bid_count;
        $('viewers').textContent = msg.viewers;
        break;
      case 'bid':
        if (state.listSeq !== null && msg.seq <= state.listSeq) return;
        state.listSeq = msg.seq;
        addBid(msg);
        showPrice(msg.amount, msg.user_id, msg.seq);
        setEnds(msg.ends_at);
        if (msg.bid_count) $('bid-count').textContent = msg.bid_count;
        if (!msg.replay) setStatus('active');
        break;
      case 'auction_closed':
        if (state.listSeq !== null && msg.seq <= state.listSeq) return;
        state.listSeq = msg.seq;
        setStatus('closed');
        notice(msg.winner_id ? 'Auction closed. Winner: ' + msg.winner_id : 'Auction closed without a winner.');
        break;
      case 'auction_cancelled':
        if (state.listSeq !== null && msg.seq <= state.listSeq) return;
        state.listSeq = msg.seq;
        setStatus('cancelled');
        notice('Auction cancelled: no more bids are taken.');
        break;
      case 'viewers':
        $('viewers').textContent = msg.count;
        break;
      case 'history_truncated':
        notice('Some bids before #' + msg.first_seq + ' are no longer available.');
        break;
      case 'missed':
        notice('Bids #' + msg.from_seq + '–#' + msg.to_seq + ' could not be delivered.');
        if (state.listSeq !== null && msg.to_seq > state.listSeq) state.listSeq = msg.to_seq;
        break;
    }
  }

  function connect() {
    var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    var url = proto + '//' + location.host + '/ws?item_id=' + encodeURIComponent(itemId);
    if (state.listSeq !== null) url += '&since_seq=' + state.listSeq;
    var ws = new WebSocket(url);
    ws.onopen = function () {
      setConn('live', 'pill-ok');
    };
    ws.onmessage = function (e) {
      // Backoff starts over only once the service sends something: a
      // viewer closed at once (4013, too many catching up) keeps backing off.
      state.attempts = 0;
      try { onMessage(JSON.parse(e.data)); } catch (err) { console.error(err); }
    };
    ws.onclose = function () {
      // Exponential backoff with jitter, so a restarted instance is not
      // hit by every page at once.
      var delay = Math.min(10000, 500 * Math.pow(2, state.attempts++)) * (0.5 + Math.random() / 2);
      setConn('reconnecting…', 'pill-wait');
      setTimeout(connect, delay);
    };
  }

  function tick() {
    var el = $('countdown');
    if (!state.endsAt) { el.textContent = '—'; return; }
    var left = state.endsAt.getTime() - (Date.now() + state.offset);
    if (state.status === 'cancelled') {
      el.textContent = 'Cancelled';
      el.classList.add('done');
      return;
    }
    if (state.status === 'closed' || left <= 0) {
      el.textContent = state.status === 'closed' ? 'Closed' : 'Ending…';
      el.classList.add('done');
      return;
    }
    el.classList.remove('done');
    el.classList.toggle('soon', left < 60000);
    var s = Math.floor(left / 1000);
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    var pad = function (n) { return (n < 10 ? '0' : '') + n; };
    el.textContent = (d ? d + 'd ' : '') + pad(h) + ':' + pad(m) + ':' + pad(s % 60);
  }

  function loadItem() {
    fetch(gateway + '/api/v1/items/' + encodeURIComponent(itemId))
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (it) {
        if (!it) return;
        if (it.name) { $('name').textContent = it.name; document.title = it.name + ' · Live auction'; }
        if (state.shownSeq < 0 && it.current_bid !== undefined && it.seq !== undefined) {
          showPrice(it.current_bid, it.highest_bidder_id, it.seq);
        }
        if (!state.endsAt) setEnds(it.ends_at);
        if (it.status && (!state.status || state.status === 'unknown')) setStatus(it.status);
      })
      .catch(function () { /* the page works without the gateway's details */ });
  }

  // Sign-in. The gateway checks the token; the page only reads its subject
  // to know whose name the bids go out under. The token stays in this tab
  // (memory and sessionStorage), never in a URL a server sees.
  var tokenKey = 'auction-token';
  var auth = null; // { token, user, exp (seconds, or 0) }

  function say(id, text, cls) {
    var el = $(id);
    el.textContent = text;
    el.className = 'result' + (id === 'sign-in-result' ? ' small' : '') + (cls ? ' ' + cls : '');
  }

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

  function expired(a) { return a.exp > 0 && a.exp * 1000 <= Date.now() + state.offset; }

  function showAuth() {
    var user = $('user-id');
    $('signed-in').hidden = !auth;
    if (auth) {
      $('signed-in-user').textContent = auth.user;
      user.value = auth.user;
    }
    user.readOnly = !!auth;
    $('sign-in-row').hidden = !!auth || !(cfg.devSignIn || state.needSignIn);
  }

  // useToken signs the page in with token; it says why when it cannot.
  function useToken(token) {
    var c = claims(token);
    if (!c) { say('sign-in-result', 'The sign-in token cannot be read.', 'bad'); return false; }
    var a = { token: token, user: c.sub, exp: typeof c.exp === 'number' ? c.exp : 0 };
    if (expired(a)) { say('sign-in-result', 'The sign-in token has expired: sign in again.', 'bad'); return false; }
    auth = a;
    try { sessionStorage.setItem(tokenKey, token); } catch (err) { /* memory only */ }
    say('sign-in-result', '');
    showAuth();
    return true;
  }

  function signOut() {
    auth = null;
    try { sessionStorage.removeItem(tokenKey); } catch (err) { /* nothing stored */ }
    showAuth();
  }

  // The embedding site tells the page who is signed in, from its frame.
  var embedOrigins = cfg.embedOrigins || [];
  function embedAllowed(origin) {
    return origin === location.origin || embedOrigins.indexOf('*') >= 0 || embedOrigins.indexOf(origin) >= 0;
  }
  function tellParent(type) {
    if (window.parent !== window) window.parent.postMessage({ type: type, item_id: itemId }, '*');
  }
  window.addEventListener('message', function (e) {
    var d = e.data;
    if (window.parent === window || e.source !== window.parent || !embedAllowed(e.origin)) return;
    if (!d || d.type !== 'auction-token' || typeof d.token !== 'string') return;
    if (useToken(d.token)) say('sign-in-result', 'Signed in by the site as ' + auth.user + '.', 'good');
  });

  // fragmentToken signs in with #token=…, at load or when the embedding site
  // changes the fragment: fragments are not sent to servers. The token is
  // taken out of the address at once, so history and bookmarks do not keep
  // it.
  function fragmentToken() {
    var m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (!m) return false;
    history.replaceState(null, '', location.pathname + location.search);
    var token;
    try { token = decodeURIComponent(m[1]); } catch (err) { token = m[1]; }
    return useToken(token);
  }
  window.addEventListener('hashchange', fragmentToken);

  function loadToken() {
    if (fragmentToken()) return;
    var saved = null;
    try { saved = sessionStorage.getItem(tokenKey); } catch (err) { /* none */ }
    if (saved && !useToken(saved)) signOut();
  }

  // Development sign-in: the gateway issues a token for any user name when
  // it runs with AUTH_DEV_TOKENS=true, and answers 404 otherwise.
  $('sign-in').addEventListener('click', function () {
    var name = $('user-id').value.trim();
    if (!name) { say('sign-in-result', 'Type the user name to sign in as.', 'bad'); return; }
    $('sign-in').disabled = true;
    say('sign-in-result', 'Signing in…');
    fetch(gateway + '/api/v1/dev/token', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user_id: name })
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.ok && data.token) {
          if (useToken(data.token)) say('sign-in-result', 'Signed in as ' + auth.user + '.', 'good');
        } else if (r.status === 404) {
          say('sign-in-result', 'The gateway offers no development sign-in (AUTH_DEV_TOKENS is off): ' +
            'sign in through the site that shows this page.', 'bad');
        } else {
          say('sign-in-result', data.message || 'Sign-in failed (' + r.status + ').', 'bad');
        }
      });
    }).catch(function () {
      say('sign-in-result', 'Could not reach the gateway at ' + gateway + '.', 'bad');
    }).then(function () { $('sign-in').disabled = false; });
  });

  $('sign-out').addEventListener('click', function () {
    signOut();
    say('sign-in-result', 'Signed out.');
  });

  $('bid-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var out = $('bid-result');
    var user = $('user-id').value.trim();
    var amount = $('amount').value.trim();
    if (!/^\d+(\.\d{1,2})?$/.test(amount)) {
      out.textContent = 'Enter an amount like 200 or 200.50.';
      out.className = 'result bad';
      return;
    }
    var headers = { 'Content-Type': 'application/json' };
    if (auth) {
      if (expired(auth)) {
        signOut();
        needSignIn('Your sign-in has expired: sign in again.');
        return;
      }
      // A bid may only be placed as the token's subject.
      headers.Authorization = 'Bearer ' + auth.token;
      user = auth.user;
    }
    // The amount goes out as the typed decimal text, never through a float.
    var body = '{"user_id":' + JSON.stringify(user) + ',"amount":' + amount + '}';
    $('bid-button').disabled = true;
    out.textContent = 'Sending…';
    out.className = 'result';
    fetch(gateway + '/api/v1/items/' + encodeURIComponent(itemId) + '/bid', {
      method: 'POST', headers: headers, body: body
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.status === 401) {
          // No token, or one the gateway no longer accepts (expired,
          // revoked, signed by another key).
          if (auth) signOut();
          needSignIn('Not signed in, or your sign-in has expired: sign in again.' +
            (data.message ? ' (' + data.message + ')' : ''));
          return;
        }
        if (r.status === 403) {
          out.textContent = 'Not allowed: signed in as ' + user + ', ' +
            (data.message || 'you may not place this bid') + '.';
          out.className = 'result bad';
          return;
        }
        var ok = r.ok && data.success !== false;
        out.textContent = (data.message || (ok ? 'Bid accepted' : 'Bid rejected (' + r.status + ')')) +
          (!ok && data.min_next_bid ? ' — minimum ' + fmt(data.min_next_bid) : '');
        out.className = 'result ' + (ok ? 'good' : 'bad');
      });
    }).catch(function () {
      out.textContent = 'Could not reach the gateway at ' + gateway + '.';
      out.className = 'result bad';
    }).then(function () { $('bid-button').disabled = false; });
  });

  function needSignIn(text) {
    state.needSignIn = true;
    showAuth();
    say('bid-result', text, 'bad');
    tellParent('auction-token-expired');
  }

  loadToken();
  showAuth();
  tellParent('auction-ready');
  loadItem();
  connect();
  tick();
  setInterval(tick, 250);
})();
