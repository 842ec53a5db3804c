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
    bids: 0
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
      state.attempts = 0;
      setConn('live', 'pill-ok');
    };
    ws.onmessage = function (e) {
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
    // The amount goes out as the typed decimal text, never through a float.
    var body = '{"user_id":' + JSON.stringify(user) + ',"amount":' + amount + '}';
    $('bid-button').disabled = true;
    out.textContent = 'Sending…';
    out.className = 'result';
    fetch(gateway + '/api/v1/items/' + encodeURIComponent(itemId) + '/bid', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: body
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
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

  loadItem();
  connect();
  tick();
  setInterval(tick, 250);
})();
