// Yggdrasil console: refreshes the live regions of a page when the server's
// event stream (/ui/events) says something changed, and counts leases down.
// Plain JavaScript, no dependency. A region is an element with data-live
// (the URL of its fragment), data-on (the topics it listens to) and
// optionally data-runner (only that runner's task events concern it).
(function () {
  'use strict';
  var timers = new WeakMap();
  var body = document.body;

  function refresh(el) {
    fetch(el.dataset.live, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) {
        if (r.status === 401) { window.location.href = '/ui/login'; return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null) { el.innerHTML = html; countdown(); }
      })
      .catch(function () { /* the next event or the fallback refresh retries */ });
  }

  // schedule coalesces a burst of events into one fetch per region.
  function schedule(el) {
    if (timers.get(el)) { return; }
    timers.set(el, setTimeout(function () { timers.delete(el); refresh(el); }, 100));
  }

  function onEvent(topic, runner) {
    body.dataset.events = String(Number(body.dataset.events || '0') + 1);
    document.querySelectorAll('[data-live]').forEach(function (el) {
      var topics = (el.dataset.on || '').split(' ');
      if (topic !== 'resync' && topics.indexOf(topic) < 0) { return; }
      if (topic === 'tasks' && el.dataset.runner && runner && el.dataset.runner !== runner) { return; }
      schedule(el);
    });
  }

  function countdown() {
    var now = Date.now();
    document.querySelectorAll('[data-expires]').forEach(function (el) {
      var s = Math.round((Number(el.dataset.expires) - now) / 1000);
      el.textContent = s >= 0 ? 'in ' + s + ' s' : 'expired ' + (-s) + ' s ago';
      el.classList.toggle('expired', s < 0);
    });
  }

  if (document.querySelector('[data-live]') && window.EventSource) {
    var state = document.getElementById('live-state');
    var opened = false;
    var es = new EventSource('/ui/events');
    ['fleet', 'tasks', 'resync'].forEach(function (t) {
      es.addEventListener(t, function (e) { onEvent(t, e.data); });
    });
    es.onopen = function () {
      body.dataset.stream = 'open';
      if (state) { state.className = 'live-state open'; state.textContent = 'live'; }
      // A reconnect may have missed events: re-read once.
      if (opened) { onEvent('resync', ''); }
      opened = true;
    };
    es.onerror = function () {
      body.dataset.stream = 'reconnecting';
      if (state) { state.className = 'live-state reconnecting'; state.textContent = 'reconnecting'; }
    };
    // Heartbeats are not announced (too many): re-read every 15 s anyway.
    setInterval(function () { onEvent('resync', ''); }, 15000);
  }
  countdown();
  setInterval(countdown, 1000);
}());
