// My bids: the signed-in user's running auctions (leading or outbid), wins
// and bids, from the gateway's GET /api/v1/users/{id}/items and
// /users/{id}/bids with the user's token. Refreshed when a notice comes.
(function () {
  'use strict';

  var A = window.Auction, $ = A.$, fmt = A.fmt;
  var pageSize = 20;
  var user = '';
  var loads = 0; // generation: answers for an earlier user are dropped

  function status(text, cls) {
    var el = $('me-status');
    el.textContent = text;
    el.className = 'result' + (cls ? ' ' + cls : '');
  }

  function state(text, cls) {
    return A.el('span', 'state state-' + cls, text);
  }

  function itemRow(it, role) {
    var li = A.el('li', 'mine-row');
    li.dataset.itemId = it.id;
    var name = A.el('div', 'mine-name');
    name.appendChild(A.itemLink(it.id, it.name || it.id));
    li.appendChild(name);
    if (role === 'won') {
      li.appendChild(A.el('span', 'mine-amount', fmt(it.current_bid)));
      li.appendChild(state('Won', 'won'));
      return li;
    }
    var amounts = A.el('span', 'mine-amount', fmt(it.current_bid));
    if (it.your_bid !== undefined) amounts.appendChild(A.el('span', 'muted small', ' (yours ' + fmt(it.your_bid) + ')'));
    li.appendChild(amounts);
    li.appendChild(it.leading ? state('Leading', 'leading') : state('Outbid', 'outbid'));
    return li;
  }

  function bidRow(b) {
    var li = A.el('li', 'mine-row');
    li.dataset.itemId = b.item_id;
    li.dataset.seq = b.seq;
    var name = A.el('div', 'mine-name');
    name.appendChild(A.itemLink(b.item_id, b.item_name || b.item_id));
    var when = new Date(b.timestamp);
    name.appendChild(A.el('div', 'muted small', isNaN(when) ? '' : when.toLocaleString()));
    li.appendChild(name);
    var amount = A.el('span', 'mine-amount', fmt(b.amount));
    if (b.auto) {
      amount.appendChild(document.createTextNode(' '));
      amount.appendChild(A.el('span', 'tag', 'auto'));
    }
    li.appendChild(amount);
    var final = b.item_status === 'closed' || b.item_status === 'cancelled';
    if (b.won) li.appendChild(state('Won', 'won'));
    else if (final) li.appendChild(state(b.item_status === 'cancelled' ? 'Cancelled' : 'Lost', 'lost'));
    else if (b.leading) li.appendChild(state('Leading', 'leading'));
    else li.appendChild(state('Outbid', 'outbid'));
    return li;
  }

  // section pages one of the three lists.
  function section(list, path, field, render) {
    var s = { cursor: '', list: list };
    var more = $(list + '-more');
    s.load = function (first, gen) {
      if (first) { s.cursor = ''; $(list).textContent = ''; }
      more.disabled = true;
      var q = path() + (path().indexOf('?') >= 0 ? '&' : '?') + 'limit=' + pageSize +
        (s.cursor ? '&cursor=' + encodeURIComponent(s.cursor) : '');
      return A.api(q).then(function (res) {
        if (gen !== loads) return;
        if (res.status === 401 || res.status === 403) {
          if (res.status === 401 && A.auth()) A.signOut();
          if (res.status === 401) A.needSignIn();
          throw new Error(res.status === 401 ? 'Sign in to see your bids.' : 'Not allowed: ' + A.errorText(res) + '.');
        }
        if (!res.ok) throw new Error('The gateway could not list them: ' + A.errorText(res) + '.');
        (res.data[field] || []).forEach(function (x) { $(list).appendChild(render(x)); });
        s.cursor = res.data.next_cursor || '';
        more.hidden = !s.cursor;
        $(list + '-empty').hidden = $(list).children.length > 0;
      }).finally(function () { more.disabled = false; });
    };
    more.addEventListener('click', function () {
      s.load(false, loads).catch(function (err) { status(err.message, 'bad'); });
    });
    return s;
  }

  function userPath() { return '/api/v1/users/' + encodeURIComponent(user); }
  var sections = [
    section('bidding', function () { return userPath() + '/items?role=bidding'; }, 'items', function (it) { return itemRow(it, 'bidding'); }),
    section('won', function () { return userPath() + '/items?role=won'; }, 'items', function (it) { return itemRow(it, 'won'); }),
    section('my-bids', function () { return userPath() + '/bids'; }, 'bids', bidRow)
  ];

  function show(u) {
    if (!A.validID(u)) { status('User ids are 1–64 letters, digits, “_” or “-”.', 'bad'); return; }
    user = u;
    var gen = ++loads;
    document.title = u + ' · My bids';
    status('Loading the bids of ' + u + '…');
    return Promise.all(sections.map(function (s) { return s.load(true, gen); })).then(function () {
      if (gen === loads) status('');
    }).catch(function (err) {
      if (gen === loads) status(err.message || 'Could not reach the gateway at ' + A.gateway + '.', 'bad');
    });
  }

  $('who-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var a = A.auth();
    show(a ? a.user : $('user-id').value.trim());
  });

  // archived says whether the lists already show the end a final notice
  // tells of: they come from the archive, which may write it a moment after
  // the notice came. An item whose bids are not on the first page counts
  // as shown.
  function archived(m) {
    if (['auction_won', 'auction_lost', 'auction_cancelled'].indexOf(m.type) < 0) return true;
    var row = document.querySelector('#my-bids li[data-item-id="' + CSS.escape(m.item_id || '') + '"] .state');
    return !row || ['state-won', 'state-lost'].some(function (c) { return row.classList.contains(c); });
  }

  // A notice means a list changed: an outbid, a win, a loss. The lists are
  // read again, and again a second later while the archive has not caught
  // up with a final notice, five times at most.
  var refresh = null;
  function reload(m, tries) {
    if (!user) return;
    var shown = show(user);
    if (!shown) return;
    shown.then(function () {
      if (tries > 1 && !archived(m)) refresh = setTimeout(function () { reload(m, tries - 1); }, 1000);
    });
  }
  A.onNotice(function (m) {
    clearTimeout(refresh);
    refresh = setTimeout(function () { reload(m, 5); }, 300);
  });

  A.onAuth(function (a) {
    if (a && a.user !== user) show(a.user);
  });

  A.start();
  if (!A.auth()) {
    // Without a sign-in (a gateway with AUTH_DISABLED=true) /me?user=X shows
    // X's bids.
    var q = new URLSearchParams(location.search).get('user');
    if (q) { $('user-id').value = q; show(q); }
    else status('Sign in, or type your user id, to see your bids.');
  }
})();
