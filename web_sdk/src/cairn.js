/* Cairn web SDK: renders Cairn layout descriptors (schema version 1) and reports what users do with them. */
(function (w, d) {
  if (w.Cairn && w.Cairn.render) return;

  var VERSION = "0.2.0";
  var SCHEMA = 1;
  var FOCUSABLE = "a[href],button,select";
  var DISMISSIBLE = /^(next_step_card|help_tip|upgrade_gate|integration_prompt)$/;
  var LEVELS = /^(full|basic|off)$/;
  var ONCE = /^(next_step_card|upgrade_gate)$/;
  var BASIC = /^(identify|widget_dismissed|widget_completed)$/;
  var MAX_QUEUE = 200; // events kept for sending; the oldest go first when more pile up offline
  var BATCH = 100;
  var DISMISS_TTL = 864e5; // a dismissal kept on the device (personalization off): one day

  var cfg = null;
  var Q = null; // the current user's event queue
  var renderers = Object.create(null);
  var mounts = new Map(); // element -> mount state
  var mem = Object.create(null); // stands in for localStorage when the browser refuses it
  var uid = 0;
  var live = null; // (m) -> Promise: keeps a mount up to date over server-sent events
  var sse = null;
  var styles = function () {}; // injects the default stylesheet once

  // ---- guards: nothing below may throw into the host page ----

  function fail(err) {
    try {
      if (cfg && typeof cfg.onError === "function") cfg.onError(err);
    } catch (e) { /* a host callback must not break rendering */ }
  }
  function warn(msg, detail) {
    try { console.warn("Cairn: " + msg, detail || ""); } catch (e) { /* no console */ }
  }
  function guard(fn) {
    return function () {
      try { return fn.apply(this, arguments); } catch (e) { fail(e); }
    };
  }
  var wait = function (ms) { return new Promise(function (r) { setTimeout(r, ms); }); };
  var iso = () => new Date().toISOString();
  var str = (v) => v == null ? "" : String(v);
  var list = (v) => Array.isArray(v) ? v : [];
  var enc = encodeURIComponent;
  var resolved = () => Promise.resolve(null);

  // ---- storage: localStorage when the browser allows it, memory otherwise ----

  function get(k) {
    try {
      var v = w.localStorage.getItem(k);
      if (v != null) return v;
    } catch (e) { /* disabled */ }
    return k in mem ? mem[k] : null;
  }
  function set(k, v) {
    mem[k] = v;
    try {
      w.localStorage.setItem(k, v);
    } catch (e) {
      // Full: cached layouts come back from the server, so make room by dropping them once.
      try {
        for (var i = w.localStorage.length; i--;) {
          var x = w.localStorage.key(i);
          if (x && x.indexOf("cairn:l:") === 0 && x !== k) w.localStorage.removeItem(x);
        }
        w.localStorage.setItem(k, v);
      } catch (e2) { /* memory only */ }
    }
  }
  function del(k) {
    delete mem[k];
    try { w.localStorage.removeItem(k); } catch (e) { /* disabled */ }
  }
  function load(k) {
    try { return JSON.parse(get(k)); } catch (e) { del(k); return null; }
  }
  function key(kind, c, m) {
    return "cairn:" + kind + ":" + c.tenantId + ":" + c.userId +
      (m ? ":" + m.screen + (kind === "l" ? ":" + str(m.view) : "") : "");
  }

  // A descriptor this SDK can show: anything else is never rendered nor cached.
  function valid(x) {
    return !!x && x.schema_version === SCHEMA && typeof x.decision_id === "string" && Array.isArray(x.slots) &&
      x.slots.every((s) => s && Array.isArray(s.widgets));
  }

  // ---- safe DOM building: text only through text nodes, attributes through setAttribute ----

  function h(tag, attrs) {
    var el = d.createElement(tag);
    for (var k in attrs || {}) {
      var v = attrs[k];
      if (v == null || v === false) continue;
      if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), guard(v));
      else el.setAttribute(k, v === true ? "" : v);
    }
    append(el, [].slice.call(arguments, 2));
    return el;
  }
  function append(el, kids) {
    kids.forEach(function (c) {
      if (Array.isArray(c)) append(el, c);
      else if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
    });
  }

  // http(s) or relative URLs only; anything else (javascript:, data:, …) is not a link. Relative
  // ones are judged against a fixed http base, so the verdict does not depend on the host page.
  function safeHref(href) {
    if (typeof href !== "string" || !href.trim()) return null;
    try {
      return /^https?:$/.test(new URL(href, "http://h/").protocol) ? href : null;
    } catch (e) { return null; }
  }

  // ---- HTTP ----

  function headers(c, extra) {
    var types = Object.keys(renderers).filter((t) => /^[\w.-]+$/.test(t));
    return Object.assign({
      Authorization: "Bearer " + c.key,
      "X-Cairn-User-Hash": str(c.userHash),
      "X-Cairn-Client": "web/" + (c.clientVersion || VERSION) + "; schema=" + SCHEMA + "; widgets=" + types
    }, extra);
  }
  function who(c) { return "?tenant_id=" + enc(c.tenantId) + "&user_id=" + enc(c.userId); }
  function call(c, path, init) {
    return fetch(c.host + path, Object.assign({ cache: "no-store" }, init, { headers: headers(c, init && init.headers) }))
      .then(function (res) {
        if (res.ok) return res;
        var err = new Error("Cairn responded " + res.status);
        err.status = res.status;
        return res.json().then(function (body) {
          err.code = body.error.code;
          err.field = body.error.field;
          err.message = body.error.message || err.message;
        }).catch(function () { /* not a JSON error body */ }).then(function () { throw err; });
      });
  }

  // ---- events: Segment-spec calls, batched, kept until the server has them ----

  // What a personalization level lets the SDK send (README: "Consent"): basic, declared traits
  // and the user's explicit choices about widgets; off, nothing. Nothing leaves before it is known.
  function allowed(q, msg) {
    return q.level === "full" || (q.level === "basic" && BASIC.test(msg.event || msg.type));
  }
  function message(fields) {
    var r = () => Math.random().toString(36).slice(2);
    return Object.assign({
      messageId: Date.now().toString(36) + r() + r(),
      tenantId: cfg.tenantId,
      userId: cfg.userId,
      timestamp: iso()
    }, fields);
  }
  function queueFor(c) {
    // b: what this page sent on page hide (a beacon has no receipt): still queued, not sent again
    // until the page is shown again; the next page sends everything queued
    var q = { c: c, k: key("q", c), items: [], level: LEVELS.test(c.personalization) ? c.personalization : null, delay: 0, b: new Set() };
    q.items = list(load(q.k)).filter((x) => x && x.messageId);
    if (q.items.length) setTimeout(() => flush(q), 0); // left by an earlier page
    return q;
  }
  function save(q) { set(q.k, JSON.stringify(q.items)); }
  function enqueue(msg, now) {
    var q = Q;
    if (!q || (q.level && !allowed(q, msg))) return resolved();
    q.items.push(msg);
    q.items.splice(0, q.items.length - MAX_QUEUE);
    save(q);
    if (now) return flush(q);
    if (!q.t) q.t = setTimeout(() => flush(q), 250);
    return resolved();
  }
  function flush(q) {
    if (!q) return resolved();
    clearTimeout(q.t);
    q.t = 0;
    return q.busy || (q.busy = send(q).then(() => {
      q.busy = null;
      q.delay = 0;
    }, (e) => {
      // Network trouble or a server error: keep the events (messageId makes resending safe).
      q.busy = null;
      q.fly = null;
      fail(e);
      q.delay = Math.min(q.delay * 2 || 1000, 60000);
      q.t = setTimeout(() => flush(q), q.delay * (1 + Math.random() / 2));
    }));
  }
  async function send(q) {
    var c = q.c;
    while (q.items.length) {
      if (!q.level) {
        var p = (await (await call(c, "/v1/preferences" + who(c))).json()).personalization;
        set(key("p", c), q.level = LEVELS.test(p) ? p : "off"); // remembered for the next page
      }
      q.items = q.items.filter((x) => allowed(q, x));
      save(q);
      var batch = q.fly = q.items.filter((x) => !q.b.has(x)).slice(0, BATCH);
      if (!batch.length) return;
      await post(q, batch);
      q.fly = null;
    }
  }
  async function post(q, batch) {
    var body = JSON.stringify({ batch: batch, sentAt: iso() });
    try {
      // keepalive: the request survives the page being closed or navigated away from.
      await call(q.c, "/v1/events", { method: "POST", body: body, keepalive: body.length < 6e4, headers: { "Content-Type": "application/json" } });
    } catch (e) {
      if (!e.status || e.status === 429 || e.status >= 500) throw e;
      // Rejected as sent: sending it again would not help. When Cairn names the one event at
      // fault (field "batch[3]…"), only that one is dropped and the others go again.
      fail(e);
      var bad = /^batch\[(\d+)\]/.exec(e.field);
      if (bad) batch = [batch[bad[1]]];
    }
    q.items = q.items.filter((x) => batch.indexOf(x) < 0);
    save(q);
  }
  // The page is being hidden or closed: send what is queued now, in a request that outlives it.
  // A beacon first. It cannot carry headers, so the publishable key and the user hash go in its
  // body, as text/plain (a type that needs no CORS preflight). It gives no receipt either: what it
  // carried stays queued, and goes again from the next page, or from this one once it is shown
  // again (messageId makes that safe). No beacon, or one refused (a browser takes at most 64 KB):
  // the usual request, keepalive when it fits.
  function hide() {
    var q = Q;
    if (!q || !q.level) return;
    var c = q.c;
    var batch = q.items.filter((x) => allowed(q, x) && !q.b.has(x) && (!q.fly || q.fly.indexOf(x) < 0)).slice(0, BATCH);
    if (!batch.length) return;
    batch.forEach((x) => q.b.add(x));
    var body = JSON.stringify({ batch: batch, sentAt: iso(), writeKey: c.key, userHash: str(c.userHash) });
    try {
      if (navigator.sendBeacon(c.host + "/v1/events", new Blob([body], { type: "text/plain;charset=UTF-8" }))) return;
    } catch (e) { /* no sendBeacon */ }
    post(q, batch).catch(() => { /* still queued for the next page */ });
  }

  function find(root, id) {
    return [].filter.call(root.querySelectorAll("[data-widget-id]"), function (x) {
      return x.getAttribute("data-widget-id") === id;
    })[0];
  }
  function widgetEvent(m, name, el, extra) {
    if (!cfg) return resolved();
    return enqueue(message({
      type: "track",
      event: name,
      properties: Object.assign({
        widget_id: el.getAttribute("data-widget-id"),
        widget_type: el.getAttribute("data-widget-type"),
        decision_id: m.d && m.d.decision_id,
        screen: m.screen
      }, extra)
    }), name !== "widget_viewed");
  }

  // Dismissals Cairn is not told of (personalization off) are kept on the device.
  function dismissed(id) {
    return !!cfg && (Q.level || get(key("p", cfg))) === "off" && (load(key("x", cfg)) || {})[id] > Date.now() - DISMISS_TTL;
  }

  // ---- widget renderers: (widget, ctx) -> Element ----

  function context(m, state) {
    return {
      h: h,
      screen: m.screen,
      decisionId: m.d.decision_id,
      descriptor: m.d,
      heading: function (text) {
        state.heading = "cairn-h" + ++uid;
        return h("h" + m.level, { id: state.heading }, str(text));
      },
      link: function (href, label, item, cls) {
        var safe = safeHref(href);
        return safe
          ? h("a", { href: safe, class: cls, "data-cairn-item": item }, label)
          : h("span", { class: cls }, label);
      },
      progress: function (done, total) {
        done = Number(done) || 0;
        total = Number(total) || 0;
        return h("p", { class: "cairn-progress" },
          h("progress", { value: done, max: total, "aria-hidden": "true" }),
          " " + done + " of " + total + " done");
      }
    };
  }

  function body() {
    return h.apply(null, ["div", null].concat([].slice.call(arguments)));
  }
  function cta(c, link, item, cls) {
    link = link || {};
    return c.link(link.href, str(link.label), item, cls);
  }
  function items(title, c, rows, fn) {
    return body(c.heading(title), h("ul", null, list(rows).map(fn)));
  }

  var builtins = {
    shortcut_grid: function (p, c) {
      return items(p.title, c, p.items, function (it) {
        var icon = str(it.icon);
        return h("li", null, c.link(it.href, [
          icon && h("span", { class: "cairn-icon", "data-icon": icon, "aria-hidden": "true" },
            /[^\x00-\x7f]/.test(icon) ? icon + " " : ""),
          str(it.label)
        ], str(it.label)));
      });
    },
    next_step_card: function (p, c) {
      var g = p.progress;
      return body(c.heading(p.title), h("p", null, str(p.body)),
        g && g.total > 0 && c.progress(g.done, g.total),
        h("p", null, cta(c, p.cta, "cta", "cairn-cta")));
    },
    checklist: function (p, c) {
      var rows = list(p.items);
      var done = rows.filter((it) => it.done).length;
      return body(c.heading(p.title), rows.length > 0 && c.progress(done, rows.length), h("ul", null, rows.map(function (it) {
        return h("li", { class: it.done ? "cairn-done" : null },
          h("span", { "aria-hidden": "true" }, it.done ? "\u2713 " : "\u25cb "),
          h("span", { class: "cairn-sr" }, it.done ? "Done: " : "To do: "),
          it.done ? str(it.label) : c.link(it.href, str(it.label), it.id));
      })));
    },
    integration_prompt: function (p, c) {
      return items(p.title, c, p.integrations, function (it) {
        var peers = it.peer_adoption;
        var share = peers && Number(peers.share);
        return h("li", null, h("strong", null, str(it.name)),
          peers && isFinite(share) &&
            h("span", { class: "cairn-muted" }, " " + Math.round(share <= 1 ? share * 100 : share) + "% of " + str(peers.cohort)),
          " ", c.link(it.connect_href, "Connect " + str(it.name), it.id, "cairn-cta"));
      });
    },
    upgrade_gate: function (p, c) {
      return body(c.heading(p.title), h("p", null, str(p.roi)),
        h("p", null, cta(c, p.cta, "cta", "cairn-cta"), " ", cta(c, p.back, "back")));
    },
    help_tip: function (p, c) {
      var a = p.article || {};
      return body(c.heading(p.title), h("p", null, str(p.body)),
        h("p", null, c.link(a.href, str(a.title), a.id), a.kind && h("span", { class: "cairn-muted" }, " (" + str(a.kind) + ")")));
    },
    template_gallery: function (p, c) {
      return items(p.title, c, p.templates, function (t) {
        return h("li", null, c.link(t.href, str(t.name), t.id), t.reason && h("div", { class: "cairn-muted" }, str(t.reason)));
      });
    }
  };
  Object.keys(builtins).forEach(function (t) {
    renderers[t] = (wd, c) => builtins[t](wd.props || {}, c);
  });

  // A widget in its frame ("Why this?", Dismiss), or its fallback, or nothing.
  function frame(m, wd, depth) {
    if (!wd || typeof wd !== "object" || depth > 8) return null;
    var id = str(wd.id);
    if (m.gone.has(id) || dismissed(id)) return null;
    var fn = renderers[wd.type];
    var state = {};
    var content = null;
    if (typeof fn === "function") {
      try { content = fn(wd, context(m, state)); } catch (e) { warn("renderer failed for " + wd.type, e); }
    }
    if (!(content instanceof Node)) {
      var fb = wd.fallback && typeof wd.fallback === "object";
      warn((fb ? "using the fallback of " : "dropped ") + "widget " + id + " of type " + str(wd.type));
      return fb ? frame(m, wd.fallback, depth + 1) : null;
    }
    var why = wd.why || {};
    var open = m.open.has(id);
    var panelId = "cairn-why" + ++uid;
    var props = wd.props || {};
    var el = h("article", {
      class: "cairn-widget cairn-" + wd.type + (m.ids && !m.ids.has(id) ? " cairn-new" : ""),
      "data-widget-id": id,
      "data-widget-type": wd.type,
      "aria-labelledby": state.heading
    }, content);
    var panel = h("div", { id: panelId, class: "cairn-why", hidden: !open },
      h("p", null, str(why.summary)),
      list(why.drivers).length > 0 && h("ul", null, list(why.drivers).map(function (dr) {
        var v = dr.value;
        return h("li", null, str(dr.signal) + ": " +
          (Array.isArray(v) ? v.join(", ") : v === true ? "yes" : v === false ? "no" : str(v)));
      })));
    append(el, [h("div", { class: "cairn-bar" },
      h("button", {
        type: "button", "data-cairn-ui": "why", "aria-expanded": String(open), "aria-controls": panelId,
        "aria-describedby": state.heading,
        onclick: function () {
          open = panel.hidden;
          panel.hidden = !open;
          this.setAttribute("aria-expanded", String(open));
          m.open[open ? "add" : "delete"](id);
        }
      }, "Why this?"),
      (props.dismissible != null ? !!props.dismissible : DISMISSIBLE.test(wd.type)) && h("button", {
        type: "button", "data-cairn-ui": "dismiss", "aria-describedby": state.heading,
        onclick: function () { dismiss(m, el, id); }
      }, "Dismiss")
    ), panel]);
    return el;
  }

  function dismiss(m, el, id) {
    var hadFocus = el.contains(d.activeElement);
    el.hidden = true;
    m.gone.add(id);
    if (hadFocus) {
      var all = [].filter.call(m.el.querySelectorAll(FOCUSABLE), (x) => !x.closest("[hidden]"));
      var next = all.filter((x) => el.compareDocumentPosition(x) & 4)[0] || all.pop();
      if (next) next.focus();
    }
    if (Q && !/full|basic/.test(Q.level)) { // off, or not known yet
      var x = load(key("x", cfg)) || {};
      x[id] = Date.now();
      set(key("x", cfg), JSON.stringify(x));
    }
    widgetEvent(m, "widget_dismissed", el).then(function () { refresh(m); });
  }

  // ---- painting a descriptor into a mount ----

  // source: "server" (fresh), "cache", "default" (bundled), "host" (renderDescriptor), "preview".
  function paint(m, desc, source) {
    if (!valid(desc)) throw new Error("Cairn: not a layout of schema version " + SCHEMA);
    var root = m.el;
    var view = desc.view || {};
    var sig = JSON.stringify([view, desc.slots, m.level]);
    m.d = desc;
    root.classList.add("cairn-root");
    root.setAttribute("data-cairn-decision", desc.decision_id);
    root.setAttribute("data-cairn-layout", str(desc.layout));
    root.setAttribute("data-cairn-source", source);
    if (sig !== m.sig) { // the same content again (a new decision id only): nothing moves
      var focus = focusKey(root);
      var frag = d.createDocumentFragment();
      var ids = new Set();
      var options = list(view.options).filter((o) => o && o.id !== view.id);
      if (options.length) {
        var selectId = "cairn-view" + ++uid;
        frag.append(h("div", { class: "cairn-views" },
          h("label", { for: selectId }, "Switch view"), " ",
          h("select", { id: selectId, onchange: function () { setView(m, this.value); } },
            [view].concat(options).map(function (o) {
              return h("option", { value: str(o.id), selected: o.id === view.id }, str(o.label || o.id));
            }))));
      }
      var once = {}; // after fallbacks, still one next step and one modal widget per screen
      desc.slots.forEach(function (slot) {
        var section = h("section", { class: "cairn-slot", "data-slot": str(slot.id) });
        slot.widgets.forEach(function (wd) {
          var el = frame(m, wd, 0);
          var t = el && el.getAttribute("data-widget-type");
          if (!el || once[t]) return;
          once[t] = ONCE.test(t);
          ids.add(el.getAttribute("data-widget-id"));
          section.append(el);
        });
        if (section.firstChild) frag.append(section);
      });
      root.textContent = "";
      root.append(frag);
      m.ids = ids;
      m.sig = sig;
      restoreFocus(root, focus);
    }
    if (!/cache|default|preview/.test(source)) observe(m);
    try {
      root.dispatchEvent(new CustomEvent("cairn:layout", { detail: desc }));
    } catch (e) { fail(e); }
  }

  function focusKey(root) {
    var a = d.activeElement;
    if (!a || a === root || !root.contains(a)) return null;
    var box = a.closest("[data-widget-id]") || root;
    return [box === root ? null : box.getAttribute("data-widget-id"),
      [].indexOf.call(box.querySelectorAll(FOCUSABLE), a)];
  }
  function restoreFocus(root, k) {
    var box = k && (k[0] == null ? root : find(root, k[0]));
    var target = box && box.querySelectorAll(FOCUSABLE)[k[1]];
    if (target) target.focus();
  }

  // widget_viewed once per widget per decision, after half of it has been on screen for a second.
  function observe(m) {
    if (m.io) m.io.disconnect();
    m.timers.forEach(clearTimeout);
    m.timers.clear();
    var seen = function (el) {
      var k = m.d.decision_id + "\n" + el.getAttribute("data-widget-id");
      if (m.seen.has(k) || !m.el.contains(el)) return;
      m.seen.add(k);
      widgetEvent(m, "widget_viewed", el);
    };
    var els = [].slice.call(m.el.querySelectorAll("[data-widget-id]"));
    if (!w.IntersectionObserver) return els.forEach(seen);
    m.io = new IntersectionObserver(guard(function (entries) {
      entries.forEach(function (e) {
        var el = e.target;
        clearTimeout(m.timers.get(el));
        if (e.intersectionRatio >= 0.5) m.timers.set(el, setTimeout(function () { seen(el); }, 1000));
      });
    }), { threshold: 0.5 });
    els.forEach(function (el) { m.io.observe(el); });
  }

  // ---- mounts: one per element ----

  function mount(element, screen, options) {
    var el = typeof element === "string" ? d.querySelector(element) : element;
    if (!el || !el.nodeType) throw new Error("Cairn needs an element to render into");
    var m = mounts.get(el);
    if (!m || m.screen !== str(screen)) {
      if (m) api.unmount(el);
      m = { el: el, screen: str(screen), seq: 0, seen: new Set(), open: new Set(), gone: new Set(), timers: new Map() };
      mounts.set(el, m);
      el.addEventListener("click", onClick);
    }
    m.level = Math.min(Math.max(Number(options.headingLevel) || 2, 2), 6);
    return m;
  }

  // widget_clicked for any link (or element marked data-cairn-cta) inside a widget.
  var onClick = guard(function (e) {
    var m = mounts.get(e.currentTarget);
    var a = m && e.target.closest && e.target.closest("a[href],[data-cairn-cta]");
    var box = a && a.closest("[data-widget-id]");
    if (!box || !m.el.contains(box) || !m.d) return;
    widgetEvent(m, "widget_clicked", box, { item: a.getAttribute("data-cairn-item") || undefined })
      .then(function () { refresh(m); });
  });

  // ---- loading: cache at once, then the server; a bundled default when there is neither ----

  function start(m) {
    // A remembered view that is no longer offered gets the user's default view from Cairn.
    m.view = m.opts.view || get(key("v", cfg, m));
    if (!m.d) {
      var cached = recall(m);
      try {
        if (cached) paint(m, cached, "cache");
      } catch (e) { del(key("l", cfg, m)); }
    }
    var done = fetchLayout(m);
    if (m.opts.live && live) live(m).catch(fail);
    else if (m.ac) m.ac.abort();
    var t = cfg.timeout == null ? 3000 : Number(cfg.timeout);
    return Promise.race([done, wait(t).then(() => fallback(m))]);
  }

  function fallback(m) {
    var dl = cfg && cfg.defaults && cfg.defaults[m.screen];
    if (!m.d && mounts.get(m.el) === m && dl) {
      try { paint(m, dl, "default"); } catch (e) { fail(e); }
    }
    return m.d || null;
  }

  function fetchLayout(m) {
    var seq = ++m.seq;
    var c = cfg;
    return call(c, "/v1/layouts/" + enc(m.screen) + who(c) + (m.view ? "&view=" + enc(m.view) : ""))
      .then((res) => res.json())
      .then(function (desc) {
        if (seq !== m.seq || mounts.get(m.el) !== m || key("q", c) !== key("q", cfg)) return; // stale
        paint(m, desc, "server");
        remember(m, desc); // only what rendered: nothing bad enters the cache
      })
      .catch(function (e) {
        fail(e);
        fallback(m);
      })
      .then(() => m.d || null);
  }

  function recall(m) {
    return cfg.cache === false ? null : load(key("l", cfg, m));
  }
  function remember(m, desc) {
    if (cfg.cache !== false) set(key("l", cfg, m), JSON.stringify(desc));
  }

  function refresh(m) {
    clearTimeout(m.refresh);
    m.refresh = setTimeout(function () { fetchLayout(m); }, 150);
  }

  function setView(m, id) {
    m.view = id;
    set(key("v", cfg, m), id);
    var cached = recall(m);
    try {
      if (cached) paint(m, cached, "cache");
    } catch (e) { /* the server answers soon */ }
    fetchLayout(m);
    if (m.opts.live && live) live(m).catch(fail);
  }

  // ---- public API ----

  var api = {
    version: VERSION,

    init: guard(function (o) {
      o = o || {};
      if (!o.key || !o.tenantId || !o.userId) throw new Error("Cairn.init needs key, tenantId and userId");
      var prev = cfg;
      cfg = Object.assign({}, o, { host: str(o.host).replace(/\/+$/, ""), tenantId: str(o.tenantId), userId: str(o.userId) });
      if (Q && Q.k === key("q", cfg)) {
        Q.c = cfg;
        if (LEVELS.test(cfg.personalization)) Q.level = cfg.personalization;
      } else {
        flush(Q); // what the previous user had queued goes with that user's credentials
        Q = queueFor(cfg);
      }
      styles();
      if (prev && (prev.tenantId !== cfg.tenantId || prev.userId !== cfg.userId)) {
        // Another user: nothing of the previous user's layouts stays on screen.
        mounts.forEach(function (m) {
          m.d = m.sig = null;
          m.el.textContent = "";
          m.seen.clear();
          m.gone.clear();
          start(m);
        });
      }
    }),

    render: function (screen, element, options) {
      try {
        if (!cfg) throw new Error("Cairn.render called before Cairn.init");
        var m = mount(element, screen, options || {});
        m.opts = options || {};
        return start(m);
      } catch (e) {
        fail(e);
        return resolved();
      }
    },

    renderDescriptor: guard(function (element, descriptor, options) {
      options = options || {};
      var m = mount(element, descriptor && descriptor.screen, options);
      m.opts = {};
      m.view = descriptor && descriptor.view && descriptor.view.id;
      styles();
      paint(m, descriptor, options.preview ? "preview" : "host");
    }),

    unmount: guard(function (element) {
      var m = mounts.get(element);
      if (!m) return;
      mounts.delete(element);
      if (m.ac) m.ac.abort();
      if (m.io) m.io.disconnect();
      m.timers.forEach(clearTimeout);
      clearTimeout(m.refresh);
      element.removeEventListener("click", onClick);
      element.textContent = "";
    }),

    registerRenderer: guard(function (type, fn) {
      if (typeof fn === "function") renderers[type] = fn;
      else delete renderers[type];
      mounts.forEach(function (m) { m.sig = null; }); // repaint with the new renderer next time
    }),

    track: function (event, properties) {
      try {
        return enqueue(message({ type: "track", event: str(event), properties: properties || {} }));
      } catch (e) { fail(e); return resolved(); }
    },

    // identify(traits) for the current user, or identify(userId, traits, {userHash}) to switch user.
    identify: function (userId, traits, options) {
      try {
        if (userId && typeof userId === "object") return api.identify(null, userId);
        if (userId != null && str(userId) !== cfg.userId) {
          api.init(Object.assign({}, cfg, { userId: userId, userHash: (options || {}).userHash }));
        }
        return enqueue(message({ type: "identify", traits: traits || {} }));
      } catch (e) { fail(e); return resolved(); }
    },

    complete: function (widgetId, properties) {
      try {
        var done = resolved();
        mounts.forEach(function (m) {
          var el = find(m.el, str(widgetId));
          if (el && m.d) done = widgetEvent(m, "widget_completed", el, properties);
        });
        return done;
      } catch (e) { fail(e); return resolved(); }
    },

    flush: function () {
      return flush(Q).catch(fail);
    }
  };

  // ==== Only in the full build (the one Cairn serves): live updates, the default stylesheet and
  // the preference setter. The core build (esbuild --drop-labels=FULL) leaves these statements out.

  // ---- live updates over server-sent events, reconnecting with backoff ----

  FULL: live = async function (m) {
    if (m.ac) m.ac.abort();
    var ac = m.ac = new AbortController();
    var c = cfg;
    var delay = 1000;
    while (!ac.signal.aborted && mounts.get(m.el) === m) {
      try {
        var res = await call(c, "/v1/layouts/" + enc(m.screen) + "/stream" + who(c) + (m.view ? "&view=" + enc(m.view) : ""),
          { headers: { Accept: "text/event-stream" }, signal: ac.signal });
        var reader = res.body.getReader();
        var decoder = new TextDecoder();
        var buf = "";
        for (;;) {
          var chunk = await reader.read();
          if (chunk.done) break;
          buf = (buf + decoder.decode(chunk.value, { stream: true })).replace(/\r\n/g, "\n");
          var cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            sse(m, buf.slice(0, cut));
            buf = buf.slice(cut + 2);
            delay = 1000;
          }
        }
      } catch (e) {
        if (ac.signal.aborted) return;
        fail(e);
        if (e.status >= 400 && e.status < 500 && e.status !== 429) return; // will not get better
      }
      await wait(delay * (1 + Math.random() / 2));
      delay = Math.min(delay * 2, 30000);
    }
  };
  FULL: sse = function (m, block) {
    var name = "message";
    var data = [];
    block.split("\n").forEach(function (line) {
      var i = line.indexOf(":");
      var field = i < 0 ? line : line.slice(0, i);
      var value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    });
    if (name !== "layout" || !data.length) return;
    try {
      var desc = JSON.parse(data.join("\n"));
      m.seq++;
      paint(m, desc, "server");
      remember(m, desc);
    } catch (e) { fail(e); }
  };

  // ---- default styles: once, themeable with --cairn-accent, --cairn-on-accent, --cairn-bg,
  // --cairn-fg and --cairn-radius ----

  FULL: styles = function () {
    if ((cfg && cfg.css === false) || d.getElementById("cairn-css")) return;
    var A = "var(--cairn-accent,#2563eb)";
    var R = "var(--cairn-radius,8px)";
    var s = d.createElement("style");
    s.id = "cairn-css";
    s.textContent =
      ".cairn-root,.cairn-slot{display:grid;gap:12px}.cairn-root{color:var(--cairn-fg,#1f2937)}" +
      ".cairn-root [hidden]{display:none!important}" +
      ".cairn-widget{background:var(--cairn-bg,#fff);color:var(--cairn-fg,#1f2937);border:1px solid #8a8f98;border-radius:" + R + ";padding:16px}" +
      ".cairn-widget :is(h2,h3,h4,h5,h6){font-size:1.15em;margin:0 0 8px}.cairn-widget p{margin:8px 0}" +
      ".cairn-widget ul{list-style:none;margin:8px 0;padding:0;display:grid;gap:6px}" +
      ".cairn-shortcut_grid ul,.cairn-template_gallery ul{grid-template-columns:repeat(auto-fill,minmax(150px,1fr))}" +
      ".cairn-root a{color:" + A + "}.cairn-root li a{display:inline-block;min-height:24px;line-height:24px}" +
      ".cairn-root a.cairn-cta{display:inline-block;background:" + A + ";color:var(--cairn-on-accent,#fff);padding:6px 12px;border-radius:" + R + ";text-decoration:none}" +
      ".cairn-bar{display:flex;gap:8px;margin-top:12px}" +
      ".cairn-root button,.cairn-root select{font:inherit;min-height:28px;color:inherit;background:none;border:1px solid #767676;border-radius:" + R + ";padding:2px 10px;cursor:pointer}" +
      ".cairn-why,.cairn-muted{font-size:.875em}" +
      ".cairn-done{text-decoration:line-through}" +
      ".cairn-progress progress{accent-color:" + A + ";vertical-align:middle}" +
      ".cairn-sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}" +
      ".cairn-root :focus-visible{outline:3px solid " + A + ";outline-offset:2px}" +
      "@media (prefers-reduced-motion:no-preference){.cairn-new{animation:cairn-in .25s ease-out}}" +
      "@keyframes cairn-in{from{opacity:0;transform:translateY(4px)}}";
    (d.head || d.documentElement).append(s);
  };

  FULL: api.setPersonalization = function (level) {
    try {
      if (!LEVELS.test(level)) throw new Error("personalization is full, basic or off");
      var q = Q;
      var c = cfg;
      var path = "/v1/preferences" + who(c);
      q.level = level;
      q.items = q.items.filter((x) => allowed(q, x));
      save(q);
      return call(c, path).then((res) => res.json()).then(function (p) {
        p.personalization = level;
        return call(c, path, { method: "PUT", body: JSON.stringify(p), headers: { "Content-Type": "application/json" } });
      }).then(function () {
        mounts.forEach(function (m) { if (m.seq) fetchLayout(m); });
      }).catch(fail);
    } catch (e) { fail(e); return resolved(); }
  };

  w.addEventListener("pagehide", guard(hide));
  d.addEventListener("visibilitychange", guard(function () {
    if (d.visibilityState === "hidden") hide();
    else if (Q && Q.b.size) { Q.b.clear(); flush(Q); } // shown again: what went by beacon, now with a receipt
  }));
  w.addEventListener("online", () => { if (Q) { Q.delay = 0; flush(Q); } });

  w.Cairn = api;
})(window, document);
