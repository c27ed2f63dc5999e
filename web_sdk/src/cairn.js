/*! Cairn web SDK: renders Cairn layout descriptors (schema version 1) and reports exposures. */
(function (w, d) {
  "use strict";
  if (w.Cairn && w.Cairn.render) return;

  var VERSION = "0.1.0";
  var SCHEMA = 1;
  var FOCUSABLE = "a[href],button,select";
  var DISMISSIBLE = /^(next_step_card|help_tip|upgrade_gate|integration_prompt)$/;

  var cfg = null;
  var renderers = {};
  var mounts = new Map(); // element -> mount state
  var queue = [];
  var flushTimer = 0;
  var retryDelay = 1000;
  var uid = 0;

  // ---- guards: nothing below may throw into the host page ----

  function fail(err) {
    try {
      if (cfg && typeof cfg.onError === "function") cfg.onError(err);
    } catch (e) { /* a host callback must not break rendering */ }
  }
  function warn(msg, detail) {
    try { console.warn("Cairn: " + msg, detail === undefined ? "" : detail); } catch (e) { /* no console */ }
  }
  function guard(fn) {
    return function () {
      try { return fn.apply(this, arguments); } catch (e) { fail(e); }
    };
  }
  function store(method, key, value) {
    try { return w.localStorage[method](key, value); } catch (e) { return null; }
  }
  var wait = function (ms) { return new Promise(function (r) { setTimeout(r, ms); }); };
  var iso = function () { return new Date().toISOString(); };
  var str = function (v) { return v == null ? "" : String(v); };
  var list = function (v) { return Array.isArray(v) ? v : []; };

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

  // http(s) or relative URLs only; anything else (javascript:, data:, …) is not a link.
  function safeHref(href) {
    if (typeof href !== "string" || !href.trim()) return null;
    try {
      return /^https?:$/.test(new URL(href, d.baseURI).protocol) ? href : null;
    } catch (e) { return null; }
  }

  // ---- HTTP ----

  function headers(extra) {
    var types = Object.keys(renderers).filter(function (t) { return /^[\w.-]+$/.test(t); });
    return Object.assign({
      Authorization: "Bearer " + cfg.key,
      "X-Cairn-User-Hash": str(cfg.userHash),
      "X-Cairn-Client": "web/" + (cfg.clientVersion || VERSION) + "; schema=" + SCHEMA +
        "; widgets=" + types.join(",")
    }, extra);
  }
  function layoutUrl(m, stream) {
    var q = "?tenant_id=" + encodeURIComponent(cfg.tenantId) + "&user_id=" + encodeURIComponent(cfg.userId) +
      (m.view ? "&view=" + encodeURIComponent(m.view) : "");
    return cfg.host + "/v1/layouts/" + encodeURIComponent(m.screen) + (stream ? "/stream" : "") + q;
  }
  async function httpError(res) {
    var err = new Error("Cairn responded " + res.status);
    err.status = res.status;
    try {
      var body = (await res.json()).error;
      err.code = body.code;
      err.message = body.message || err.message;
    } catch (e) { /* not a JSON error body */ }
    return err;
  }

  // ---- events: Segment-spec calls, batched ----

  function message(fields) {
    var c = w.crypto;
    return Object.assign({
      messageId: c && c.randomUUID ? c.randomUUID() : Date.now().toString(36) + Math.random().toString(36).slice(2),
      tenantId: cfg.tenantId,
      userId: cfg.userId,
      timestamp: iso()
    }, fields);
  }
  function enqueue(msg, now) {
    if (!cfg) return Promise.resolve();
    queue.push(msg);
    if (queue.length > 500) queue.splice(0, queue.length - 500);
    if (now) return flush();
    if (!flushTimer) flushTimer = setTimeout(flush, 250);
    return Promise.resolve();
  }
  async function flush() {
    clearTimeout(flushTimer);
    flushTimer = 0;
    if (!cfg || !queue.length) return;
    var batch = queue.splice(0, 100);
    var body = JSON.stringify({ batch: batch, sentAt: iso() });
    try {
      var res = await fetch(cfg.host + "/v1/events", {
        method: "POST",
        headers: headers({ "Content-Type": "application/json" }),
        body: body,
        keepalive: body.length < 60000 // survives navigating away after a click
      });
      if (res.status === 429 || res.status >= 500) throw await httpError(res);
      if (!res.ok) fail(await httpError(res)); // rejected batch: do not resend it
      retryDelay = 1000;
      if (queue.length) return flush();
    } catch (e) {
      // Network trouble or server error: keep the events (messageId makes resending safe).
      queue = batch.concat(queue);
      fail(e);
      flushTimer = setTimeout(flush, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 60000);
    }
  }
  function widgetEvent(m, name, el, extra) {
    if (!cfg) return Promise.resolve();
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

  // ---- widget renderers: (widget, ctx) -> Element ----

  function context(m, w, state) {
    return {
      h: h,
      screen: m.screen,
      decisionId: m.d && m.d.decision_id,
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
      },
      track: function (event, props) { return api.track(event, props); }
    };
  }

  function body(c) {
    return h.apply(null, ["div", null].concat([].slice.call(arguments, 1)));
  }
  function cta(c, link, item, cls) {
    link = link || {};
    return c.link(link.href, str(link.label), item, cls);
  }

  var builtins = {
    shortcut_grid: function (wd, c) {
      var p = wd.props || {};
      return body(c, c.heading(p.title), h("ul", null, list(p.items).map(function (it) {
        var icon = str(it.icon);
        return h("li", null, c.link(it.href, [
          icon && h("span", { class: "cairn-icon", "data-icon": icon, "aria-hidden": "true" },
            /[^\x00-\x7f]/.test(icon) ? icon + " " : ""),
          str(it.label)
        ], str(it.label)));
      })));
    },
    next_step_card: function (wd, c) {
      var p = wd.props || {};
      var g = p.progress;
      return body(c, c.heading(p.title), h("p", null, str(p.body)),
        g && g.total > 0 && c.progress(g.done, g.total),
        h("p", null, cta(c, p.cta, "cta", "cairn-cta")));
    },
    checklist: function (wd, c) {
      var p = wd.props || {};
      var items = list(p.items);
      var done = items.filter(function (it) { return it.done; }).length;
      return body(c, c.heading(p.title), items.length > 0 && c.progress(done, items.length), h("ul", null, items.map(function (it) {
        return h("li", { class: it.done ? "cairn-done" : null },
          h("span", { "aria-hidden": "true" }, it.done ? "\u2713 " : "\u25cb "),
          h("span", { class: "cairn-sr" }, it.done ? "Done: " : "To do: "),
          it.done ? str(it.label) : c.link(it.href, str(it.label), it.id));
      })));
    },
    integration_prompt: function (wd, c) {
      var p = wd.props || {};
      return body(c, c.heading(p.title), h("ul", null, list(p.integrations).map(function (it) {
        var peers = it.peer_adoption;
        var share = peers && Number(peers.share);
        return h("li", null, h("strong", null, str(it.name)),
          peers && isFinite(share) &&
            h("span", { class: "cairn-muted" }, " " + Math.round(share <= 1 ? share * 100 : share) + "% of " + str(peers.cohort)),
          " ", c.link(it.connect_href, "Connect " + str(it.name), it.id, "cairn-cta"));
      })));
    },
    upgrade_gate: function (wd, c) {
      var p = wd.props || {};
      return body(c, c.heading(p.title), h("p", null, str(p.roi)),
        h("p", null, cta(c, p.cta, "cta", "cairn-cta"), " ", cta(c, p.back, "back")));
    },
    help_tip: function (wd, c) {
      var p = wd.props || {};
      var a = p.article || {};
      return body(c, c.heading(p.title), h("p", null, str(p.body)),
        h("p", null, c.link(a.href, str(a.title), a.id), a.kind && h("span", { class: "cairn-muted" }, " (" + a.kind + ")")));
    },
    template_gallery: function (wd, c) {
      var p = wd.props || {};
      return body(c, c.heading(p.title), h("ul", null, list(p.templates).map(function (t) {
        return h("li", null, c.link(t.href, str(t.name), t.id), t.reason && h("div", { class: "cairn-muted" }, str(t.reason)));
      })));
    }
  };
  Object.assign(renderers, builtins);

  // A widget in its frame ("Why this?", Dismiss), or its fallback, or nothing.
  function frame(m, wd, depth) {
    if (!wd || typeof wd !== "object" || depth > 8) return null;
    var fn = renderers[wd.type];
    var state = {};
    var content = null;
    if (fn) {
      try { content = fn(wd, context(m, wd, state)); } catch (e) { warn("renderer failed for " + wd.type, e); }
    }
    if (!(content instanceof Node)) {
      if (wd.fallback && typeof wd.fallback === "object") return frame(m, wd.fallback, depth + 1);
      warn("dropped widget " + str(wd.id) + " of type " + str(wd.type));
      return null;
    }
    var id = str(wd.id);
    var why = wd.why || {};
    var open = m.open.has(id);
    var panelId = "cairn-why" + ++uid;
    var props = wd.props || {};
    var dismissible = props.dismissible != null ? !!props.dismissible : DISMISSIBLE.test(wd.type);
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
      dismissible && h("button", {
        type: "button", "data-cairn-ui": "dismiss", "aria-describedby": state.heading,
        onclick: function () { dismiss(m, el); }
      }, "Dismiss")
    ), panel]);
    return el;
  }

  function dismiss(m, el) {
    var hadFocus = el.contains(d.activeElement);
    el.hidden = true;
    if (hadFocus) {
      var all = [].filter.call(m.el.querySelectorAll(FOCUSABLE), function (x) { return !x.closest("[hidden]"); });
      var next = all.filter(function (x) { return el.compareDocumentPosition(x) & 4; })[0] || all.pop();
      if (next) next.focus();
    }
    widgetEvent(m, "widget_dismissed", el).then(function () { refresh(m); });
  }

  // ---- painting a descriptor into a mount ----

  // quiet: no exposures and no caching (a cached copy, or a preview).
  function paint(m, desc, quiet) {
    if (!desc || !Array.isArray(desc.slots)) throw new Error("Cairn: not a layout descriptor");
    var root = m.el;
    var view = desc.view || {};
    var sig = JSON.stringify([view, desc.slots, m.level]);
    m.d = desc;
    root.classList.add("cairn-root");
    root.setAttribute("data-cairn-decision", str(desc.decision_id));
    root.setAttribute("data-cairn-layout", str(desc.layout));
    if (!quiet) root.removeAttribute("data-cairn-cached");
    if (sig !== m.sig) {
      m.sig = sig;
      var focus = focusKey(root);
      var frag = d.createDocumentFragment();
      var ids = new Set();
      var options = list(view.options).filter(function (o) { return o && o.id !== view.id; });
      if (options.length) {
        var selectId = "cairn-view" + ++uid;
        frag.append(h("div", { class: "cairn-views" },
          h("label", { for: selectId }, "Switch view"), " ",
          h("select", { id: selectId, onchange: function () { setView(m, this.value); } },
            [view].concat(options).map(function (o) {
              return h("option", { value: str(o.id), selected: o.id === view.id }, str(o.label || o.id));
            }))));
      }
      desc.slots.forEach(function (slot) {
        var section = h("section", { class: "cairn-slot", "data-slot": str(slot && slot.id) });
        list(slot && slot.widgets).forEach(function (wd) {
          var el = frame(m, wd, 0);
          if (el) { ids.add(el.getAttribute("data-widget-id")); section.append(el); }
        });
        if (section.firstChild) frag.append(section);
      });
      root.textContent = "";
      root.append(frag);
      m.ids = ids;
      restoreFocus(root, focus);
    }
    if (!quiet) {
      observe(m);
      if (cfg && cfg.cache !== false) store("setItem", cacheKey(m), JSON.stringify(desc));
    }
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
  function restoreFocus(root, key) {
    if (!key) return;
    var box = key[0] == null ? root : [].filter.call(root.querySelectorAll("[data-widget-id]"), function (x) {
      return x.getAttribute("data-widget-id") === key[0];
    })[0];
    var target = box && box.querySelectorAll(FOCUSABLE)[key[1]];
    if (target) target.focus();
  }

  // widget_viewed once per widget per decision, when at least half of it is on screen.
  function observe(m) {
    if (m.io) m.io.disconnect();
    var seen = function (el) {
      var key = m.d.decision_id + "\n" + el.getAttribute("data-widget-id");
      if (m.seen.has(key)) return;
      m.seen.add(key);
      widgetEvent(m, "widget_viewed", el);
    };
    var els = [].slice.call(m.el.querySelectorAll("[data-widget-id]"));
    if (!w.IntersectionObserver) return els.forEach(seen);
    m.io = new IntersectionObserver(guard(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) { m.io.unobserve(e.target); seen(e.target); }
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
      m = { el: el, screen: str(screen), seq: 0, seen: new Set(), open: new Set() };
      mounts.set(el, m);
      el.addEventListener("click", onClick);
    }
    m.level = Math.min(Math.max(Number(options.headingLevel) || 3, 2), 6);
    return m;
  }

  // widget_clicked for any link (or element marked data-cairn-cta) inside a widget.
  var onClick = guard(function (e) {
    var m = mounts.get(e.currentTarget);
    var a = m && e.target.closest && e.target.closest("a[href],[data-cairn-cta]");
    var box = a && a.closest("[data-widget-id]");
    if (!box || !m.el.contains(box)) return;
    widgetEvent(m, "widget_clicked", box, { item: a.getAttribute("data-cairn-item") || undefined })
      .then(function () { refresh(m); });
  });

  // ---- loading, live updates, view switching ----

  function viewKey(m) { return "cairn:view:" + cfg.tenantId + ":" + cfg.userId + ":" + m.screen; }
  function cacheKey(m) { return "cairn:layout:" + cfg.tenantId + ":" + cfg.userId + ":" + m.screen + ":" + str(m.view); }

  async function load(m) {
    var seq = ++m.seq;
    if (!cfg) return null;
    try {
      var res = await fetch(layoutUrl(m), { headers: headers(), cache: "no-cache" });
      if (!res.ok) {
        if (res.status < 500 && m.view && m.viewStored) {
          // A remembered view that is no longer offered: forget it and ask for the default.
          store("removeItem", viewKey(m));
          m.view = m.viewStored = null;
          return load(m);
        }
        throw await httpError(res);
      }
      var desc = await res.json();
      if (seq === m.seq && mounts.get(m.el) === m) paint(m, desc);
    } catch (e) {
      fail(e);
    }
    return m.d || null;
  }

  function refresh(m) {
    clearTimeout(m.refresh);
    m.refresh = setTimeout(function () { load(m); }, 150);
  }

  function setView(m, id) {
    m.view = id;
    m.viewStored = false;
    store("setItem", viewKey(m), id);
    load(m);
    if (m.live) stream(m).catch(fail);
  }

  async function stream(m) {
    if (m.ac) m.ac.abort();
    var ac = m.ac = new AbortController();
    var delay = 1000;
    while (!ac.signal.aborted && mounts.get(m.el) === m) {
      try {
        var res = await fetch(layoutUrl(m, true), {
          headers: headers({ Accept: "text/event-stream" }), cache: "no-store", signal: ac.signal
        });
        if (!res.ok || !res.body) throw await httpError(res);
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
  }
  function sse(m, block) {
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
    try { m.seq++; paint(m, JSON.parse(data.join("\n"))); } catch (e) { fail(e); }
  }

  // ---- default styles: once, themeable with --cairn-accent, --cairn-bg, --cairn-fg, --cairn-radius ----

  function styles() {
    if (cfg.css === false || d.getElementById("cairn-css")) return;
    var A = "var(--cairn-accent,#2563eb)";
    var R = "var(--cairn-radius,8px)";
    var s = d.createElement("style");
    s.id = "cairn-css";
    s.textContent =
      ".cairn-root{display:grid;gap:12px;color:var(--cairn-fg,#1f2937)}" +
      ".cairn-root [hidden]{display:none!important}" +
      ".cairn-slot{display:grid;gap:12px}" +
      ".cairn-widget{background:var(--cairn-bg,#fff);color:var(--cairn-fg,#1f2937);border:1px solid rgba(127,127,127,.3);border-radius:" + R + ";padding:16px}" +
      ".cairn-widget>div>:first-child{margin-top:0}.cairn-widget p{margin:8px 0}" +
      ".cairn-widget ul{list-style:none;margin:8px 0;padding:0;display:grid;gap:6px}" +
      ".cairn-shortcut_grid ul,.cairn-template_gallery ul{grid-template-columns:repeat(auto-fill,minmax(150px,1fr))}" +
      ".cairn-root a{color:" + A + "}" +
      ".cairn-root a.cairn-cta{display:inline-block;background:" + A + ";color:#fff;padding:6px 12px;border-radius:" + R + ";text-decoration:none}" +
      ".cairn-bar{display:flex;gap:8px;margin-top:12px}" +
      ".cairn-bar button{font:inherit;font-size:.85em;color:inherit;background:none;border:1px solid rgba(127,127,127,.5);border-radius:" + R + ";padding:2px 8px;cursor:pointer}" +
      ".cairn-why,.cairn-muted{font-size:.875em;opacity:.8}" +
      ".cairn-done{text-decoration:line-through;opacity:.7}" +
      ".cairn-progress progress{accent-color:" + A + ";vertical-align:middle}" +
      ".cairn-sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}" +
      ".cairn-root :focus-visible{outline:2px solid " + A + ";outline-offset:2px}" +
      "@media (prefers-reduced-motion:no-preference){.cairn-new{animation:cairn-in .25s ease-out}}" +
      "@keyframes cairn-in{from{opacity:0;transform:translateY(4px)}}";
    (d.head || d.documentElement).append(s);
  }

  // ---- public API ----

  var api = {
    version: VERSION,

    init: guard(function (o) {
      o = o || {};
      if (!o.key || !o.tenantId || !o.userId) throw new Error("Cairn.init needs key, tenantId and userId");
      cfg = Object.assign({}, o, { host: str(o.host).replace(/\/+$/, "") });
      styles();
    }),

    render: function (screen, element, options) {
      try {
        if (!cfg) throw new Error("Cairn.render called before Cairn.init");
        options = options || {};
        var m = mount(element, screen, options);
        var remembered = store("getItem", viewKey(m));
        m.view = options.view || remembered || null;
        m.viewStored = !options.view && !!remembered;
        m.live = !!options.live;
        if (!m.d && cfg.cache !== false) {
          try {
            var cached = JSON.parse(store("getItem", cacheKey(m)));
            if (cached) {
              paint(m, cached, true);
              m.el.setAttribute("data-cairn-cached", "");
            }
          } catch (e) { /* nothing usable cached */ }
        }
        var done = load(m);
        if (m.live) stream(m).catch(fail);
        else if (m.ac) m.ac.abort();
        return done;
      } catch (e) {
        fail(e);
        return Promise.resolve(null);
      }
    },

    renderDescriptor: guard(function (element, descriptor, options) {
      options = options || {};
      var m = mount(element, descriptor && descriptor.screen, options);
      m.view = descriptor && descriptor.view && descriptor.view.id;
      paint(m, descriptor, !!options.preview);
    }),

    unmount: guard(function (element) {
      var m = mounts.get(element);
      if (!m) return;
      mounts.delete(element);
      if (m.ac) m.ac.abort();
      if (m.io) m.io.disconnect();
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
      } catch (e) { fail(e); return Promise.resolve(); }
    },

    identify: function (traits) {
      try {
        return enqueue(message({ type: "identify", traits: traits || {} }));
      } catch (e) { fail(e); return Promise.resolve(); }
    },

    flush: function () {
      return flush().catch(fail);
    }
  };

  w.addEventListener("pagehide", api.flush);
  d.addEventListener("visibilitychange", function () { if (d.visibilityState === "hidden") api.flush(); });

  w.Cairn = api;
})(window, document);
