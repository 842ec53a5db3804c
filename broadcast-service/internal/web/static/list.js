// The list of active auctions: pages from the gateway's
// GET /api/v1/items?status=active, each row kept live by its own WebSocket
// to the broadcast service (the same /ws?item_id= a single item's page
// uses), and a countdown ticking on the server's clock.
(function () {
  'use strict';

  var A = window.Auction, $ = A.$;
  var pageSize = 20;
  // Sockets the list holds at most; rows past it are refreshed by asking
  // the gateway now and then, so that a long list cannot use up the
  // service's per-address viewer limit (WS_MAX_CONNS_PER_IP, 100 by
  // default) that the item pages in other tabs also count against.
  var maxLive = 40;
  var pollEvery = 15000;

  var rows = {};   // item id -> row state
  var order = [];  // item ids in list order
  var cursor = '';

  function row(it) {
    var li = A.el('li', 'auction');
    li.dataset.itemId = it.id;
    var name = A.el('div', 'auction-name');
    name.appendChild(A.itemLink(it.id, it.name || it.id));
    name.appendChild(A.el('div', 'muted small auction-id', it.id));
    li.appendChild(name);
    var price = A.el('div', 'auction-price');
    price.appendChild(A.el('div', 'label price-label', 'Current bid'));
    price.appendChild(A.el('div', 'price-sm', '—'));
    price.appendChild(A.el('div', 'muted small bid-count', ''));
    li.appendChild(price);
    var ends = A.el('div', 'auction-ends');
    ends.appendChild(A.el('div', 'label', 'Ends in'));
    ends.appendChild(A.el('div', 'countdown-sm', '—'));
    li.appendChild(ends);
    return li;
  }

  // update shows an item's state unless a newer one (higher seq) is shown.
  function update(r, s) {
    if (s.seq !== undefined && s.seq < r.seq) return;
    if (s.seq !== undefined) r.seq = s.seq;
    var price = r.li.querySelector('.price-sm');
    var amount = s.current_bid;
    if (s.bid_count === 0 && s.starting_price !== undefined) {
      // No bid yet: the first one needs the starting price.
      amount = s.starting_price;
      r.li.querySelector('.price-label').textContent = 'Starting bid';
    } else if (s.bid_count > 0) {
      r.li.querySelector('.price-label').textContent = 'Current bid';
    }
    if (amount !== undefined && price.textContent !== A.fmt(amount)) {
      price.textContent = A.fmt(amount);
      price.classList.remove('flash');
      void price.offsetWidth; // restart the highlight animation
      price.classList.add('flash');
    }
    if (s.bid_count !== undefined) {
      r.li.querySelector('.bid-count').textContent = s.bid_count === 1 ? '1 bid' : s.bid_count + ' bids';
    }
    if (s.ends_at) r.endsAt = new Date(s.ends_at);
    if (s.status) r.status = s.status;
  }

  function follow(r) {
    var url = A.wsURL('/ws?item_id=' + encodeURIComponent(r.id));
    var ws = new WebSocket(url);
    r.ws = ws;
    ws.onmessage = function (e) {
      r.attempts = 0;
      var m;
      try { m = JSON.parse(e.data); } catch (err) { return; }
      A.observeClock(m);
      switch (m.type) {
        case 'snapshot':
          update(r, { seq: m.seq, current_bid: m.seq > 0 ? m.current_bid : undefined, bid_count: m.bid_count, ends_at: m.ends_at, status: m.status });
          break;
        case 'bid':
          update(r, { seq: m.seq, current_bid: m.amount, bid_count: m.bid_count, ends_at: m.ends_at });
          break;
        case 'auction_closed':
          update(r, { seq: m.seq, status: 'closed' });
          break;
        case 'auction_cancelled':
          update(r, { seq: m.seq, status: 'cancelled' });
          break;
      }
    };
    ws.onclose = function () {
      // A finished auction has nothing more to say.
      if (r.status === 'closed' || r.status === 'cancelled') return;
      setTimeout(function () { follow(r); }, A.backoff(r.attempts++));
    };
  }

  function poll(r) {
    A.api('/api/v1/items/' + encodeURIComponent(r.id)).then(function (res) {
      if (res.ok) update(r, res.data);
    }).catch(function () { /* next time */ });
  }

  function add(it) {
    if (!it || !A.validID(String(it.id)) || rows[it.id]) return;
    var r = { id: it.id, seq: -1, endsAt: null, status: it.status, attempts: 0, li: row(it) };
    rows[it.id] = r;
    order.push(it.id);
    $('auctions').appendChild(r.li);
    update(r, it);
    showCountdown(r); // now, not at the next tick
    if (order.length <= maxLive) follow(r);
    else r.live = false;
  }

  function load() {
    var more = $('load-more');
    more.disabled = true;
    var q = '/api/v1/items?status=active&limit=' + pageSize + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
    A.api(q).then(function (res) {
      if (!res.ok) throw new Error(A.errorText(res));
      (res.data.items || []).forEach(add);
      cursor = res.data.next_cursor || '';
      more.hidden = !cursor;
      $('auctions-status').textContent = order.length ? '' : 'No active auctions right now.';
      $('auctions-status').hidden = !!order.length;
    }).catch(function (err) {
      $('auctions-status').hidden = false;
      $('auctions-status').textContent = 'Could not load the auctions from ' + A.gateway + ': ' + err.message + '.';
    }).then(function () { more.disabled = false; });
  }

  function showCountdown(r) {
    var el = r.li.querySelector('.countdown-sm');
    if (r.status === 'closed' || r.status === 'cancelled') {
      el.textContent = r.status === 'closed' ? 'Closed' : 'Cancelled';
      r.li.classList.add('ended');
      return;
    }
    var c = A.countdown(r.endsAt);
    el.textContent = c.text;
    el.classList.toggle('soon', c.soon);
  }

  function tick() {
    order.forEach(function (id) { showCountdown(rows[id]); });
  }

  setInterval(function () {
    order.forEach(function (id) { if (rows[id].live === false) poll(rows[id]); });
  }, pollEvery);

  $('load-more').addEventListener('click', load);
  $('pick').addEventListener('submit', function (e) {
    e.preventDefault();
    var id = $('item-id').value.trim();
    if (A.validID(id)) location.href = '/items/' + encodeURIComponent(id);
  });

  A.start();
  load();
  tick();
  setInterval(tick, 250);
})();
