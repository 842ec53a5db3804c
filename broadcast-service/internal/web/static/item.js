// One auction, live: the bids archived so far (the gateway's history) and
// then every event from one WebSocket to the broadcast service, merged by
// seq; a bid form that posts plain or maximum bids to the API gateway.
(function () {
  'use strict';

  var A = window.Auction, $ = A.$, fmt = A.fmt;
  var itemId = decodeURIComponent(location.pathname.split('/').pop() || '');
  A.itemId = itemId;

  var maxShown = 100; // bids kept in the list
  var state = {
    listSeq: null,   // seq of the newest event in the list (resume point)
    shownSeq: -1,    // seq of the state shown in the header
    endsAt: null,    // Date
    status: '',
    attempts: 0,
    bidCount: 0,
    historyDone: false
  };

  $('item-id').textContent = itemId;
  $('name').textContent = itemId;
  document.title = itemId + ' · Live auction';

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

  function setBidCount(n) {
    if (!n || n < state.bidCount) return;
    state.bidCount = n;
    $('bid-count').textContent = n;
    showEmpty();
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

  // showEmpty says why the list is empty, if it is: only an item without
  // bids waits for the first one.
  function showEmpty() {
    var empty = $('no-bids');
    if ($('bids').children.length) { empty.hidden = true; return; }
    empty.hidden = false;
    if (!state.historyDone) empty.textContent = 'Loading bids…';
    else if (state.bidCount > 0) empty.textContent = 'Earlier bids are not available right now.';
    else empty.textContent = 'Waiting for the first bid…';
  }

  // addBid puts a bid in the list at its seq, newest first; a seq already
  // listed (from history and again live) is shown once.
  function addBid(b) {
    var list = $('bids');
    var seq = Number(b.seq);
    if (list.querySelector('li[data-seq="' + seq + '"]')) return;
    var li = A.el('li', b.auto ? 'auto' : '');
    var when = new Date(b.timestamp);
    li.appendChild(A.el('span', 'amt', fmt(b.amount)));
    var who = A.el('span', 'who', b.user_id);
    if (b.auto) {
      var tag = A.el('span', 'tag', 'auto');
      tag.title = 'placed automatically for the bidder’s maximum';
      who.appendChild(document.createTextNode(' '));
      who.appendChild(tag);
    }
    li.appendChild(who);
    li.appendChild(A.el('time', '', isNaN(when) ? '' : when.toLocaleTimeString()));
    li.dataset.seq = seq;
    var next = null;
    for (var i = 0; i < list.children.length; i++) {
      if (Number(list.children[i].dataset.seq) < seq) { next = list.children[i]; break; }
    }
    list.insertBefore(li, next);
    while (list.children.length > maxShown) list.removeChild(list.lastChild);
    showEmpty();
  }

  function onMessage(msg) {
    A.observeClock(msg);
    switch (msg.type) {
      case 'snapshot':
        if (state.listSeq === null) state.listSeq = msg.seq;
        if (msg.seq > 0) showPrice(msg.current_bid, msg.highest_bidder_id, msg.seq);
        setEnds(msg.ends_at);
        setStatus(msg.status);
        setBidCount(msg.bid_count);
        $('viewers').textContent = msg.viewers;
        break;
      case 'bid':
        if (state.listSeq !== null && msg.seq <= state.listSeq) return;
        state.listSeq = msg.seq;
        addBid(msg);
        showPrice(msg.amount, msg.user_id, msg.seq);
        setEnds(msg.ends_at);
        setBidCount(msg.bid_count);
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
    var url = A.wsURL('/ws?item_id=' + encodeURIComponent(itemId));
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
      setConn('reconnecting…', 'pill-wait');
      setTimeout(connect, A.backoff(state.attempts++));
    };
  }

  function tick() {
    var el = $('countdown');
    if (state.status === 'cancelled' || state.status === 'closed') {
      el.textContent = state.status === 'closed' ? 'Closed' : 'Cancelled';
      el.classList.add('done');
      return;
    }
    var c = A.countdown(state.endsAt);
    el.textContent = c.text;
    el.classList.toggle('done', c.over);
    el.classList.toggle('soon', c.soon);
  }

  function loadItem() {
    A.api('/api/v1/items/' + encodeURIComponent(itemId)).then(function (res) {
      var it = res.data;
      if (!res.ok) return;
      if (it.name) { $('name').textContent = it.name; document.title = it.name + ' · Live auction'; }
      if (state.shownSeq < 0 && it.current_bid !== undefined && it.seq !== undefined) {
        showPrice(it.current_bid, it.highest_bidder_id, it.seq);
      }
      if (!state.endsAt) setEnds(it.ends_at);
      if (it.status && (!state.status || state.status === 'unknown')) setStatus(it.status);
      setBidCount(it.bid_count);
    }).catch(function () { /* the page works without the gateway's details */ });
  }

  // loadHistory fills the list from the archive, then follows the item
  // live from the newest archived seq: the service replays what the
  // archive does not have yet, so the list has no gap and, by seq, no
  // duplicate. Without the archive the page follows live events only.
  function loadHistory() {
    // The live price must not wait long for a slow archive.
    A.api('/api/v1/items/' + encodeURIComponent(itemId) + '/bids?limit=' + maxShown, { timeout: 5000 }).then(function (res) {
      if (!res.ok || !Array.isArray(res.data.bids)) throw new Error('no history');
      var newest = 0;
      res.data.bids.forEach(function (b) {
        addBid(b);
        if (b.seq > newest) newest = b.seq;
      });
      state.listSeq = newest;
    }).catch(function () {
      state.listSeq = null;
    }).then(function () {
      state.historyDone = true;
      showEmpty();
      connect();
    });
  }

  // ---- The bid form: a plain bid at exactly the amount, or a maximum the
  // platform bids up to for the bidder.
  function kind() {
    return $('kind-max').checked ? 'max' : 'amount';
  }
  function showKind() {
    var max = kind() === 'max';
    $('amount-label-text').textContent = max ? 'Your maximum' : 'Amount';
    $('bid-button').textContent = max ? 'Set maximum' : 'Bid';
    $('kind-help').textContent = max
      ? 'The platform bids for you, one increment at a time, only as far as needed, up to this amount. Nobody else sees it.'
      : 'A bid at exactly this amount.';
  }
  $('kind-amount').addEventListener('change', showKind);
  $('kind-max').addEventListener('change', showKind);

  function say(text, cls) {
    var out = $('bid-result');
    out.textContent = text;
    out.className = 'result' + (cls ? ' ' + cls : '');
  }

  $('bid-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var user = $('user-id').value.trim();
    var amount = $('amount').value.trim();
    if (!/^\d+(\.\d{1,2})?$/.test(amount)) {
      say('Enter an amount like 200 or 200.50.', 'bad');
      return;
    }
    var auth = A.auth();
    if (auth) {
      if (A.expired(auth)) {
        A.signOut();
        needSignIn('Your sign-in has expired: sign in again.');
        return;
      }
      // A bid may only be placed as the token's subject.
      user = auth.user;
    }
    var field = kind() === 'max' ? 'max_amount' : 'amount';
    // The amount goes out as the typed decimal text, never through a float.
    var body = '{"user_id":' + JSON.stringify(user) + ',"' + field + '":' + amount + '}';
    $('bid-button').disabled = true;
    say('Sending…');
    A.api('/api/v1/items/' + encodeURIComponent(itemId) + '/bid', { method: 'POST', body: body }).then(function (res) {
      var data = res.data;
      if (res.status === 401) {
        // No token, or one the gateway no longer accepts (expired,
        // revoked, signed by another key).
        if (A.auth()) A.signOut();
        needSignIn('Not signed in, or your sign-in has expired: sign in again.' +
          (data.message ? ' (' + data.message + ')' : ''));
        return;
      }
      if (res.status === 403) {
        say('Not allowed: signed in as ' + user + ', ' + (data.message || 'you may not place this bid') + '.', 'bad');
        return;
      }
      var ok = res.ok && data.success !== false;
      var text = data.message || (ok ? 'Bid accepted' : 'Bid rejected (' + res.status + ')');
      if (ok && data.max_amount !== undefined) text += ' — your maximum ' + fmt(data.max_amount);
      if (ok && data.current_bid !== undefined) text += ' — current bid ' + fmt(data.current_bid);
      if (!ok && data.min_next_bid) text += ' — minimum ' + fmt(data.min_next_bid);
      // Accepted but not leading: a maximum bid answered it at once.
      say(text, ok ? (data.is_highest === false ? 'warn' : 'good') : 'bad');
    }).catch(function () {
      say('Could not reach the gateway at ' + A.gateway + '.', 'bad');
    }).then(function () { $('bid-button').disabled = false; });
  });

  function needSignIn(text) {
    A.needSignIn();
    say(text, 'bad');
  }

  A.start();
  showKind();
  showEmpty();
  loadItem();
  loadHistory();
  tick();
  setInterval(tick, 250);
})();
