/* Simple Analytics Stack tracker; README: "The tracker script". */
(function (w, d) {
  "use strict";
  var tag = d.currentScript;
  if (!tag) return;
  function opt(name) { return tag.getAttribute("data-" + name); }
  function has(name) { return tag.hasAttribute("data-" + name); }

  var key = opt("key");
  var api = (opt("api") || new URL(tag.src).origin) + "/api/events/ingest/";
  var source = opt("source") || "web";
  var hashMode = has("hash");
  var loc = w.location;
  var queued = (w.sa && w.sa.q) || [];
  var lastPage = null;

  function ignored() {
    try {
      if (w.localStorage.getItem("sa_ignore") === "true") return true;
    } catch (e) {}
    return navigator.webdriver && !has("allow-automation");
  }

  // A string body is sent as text/plain: a simple request, no preflight.
  function send(name, props) {
    if (!key || ignored()) return;
    var p = { url: loc.href };
    for (var k in props) p[k] = props[k];
    var body = JSON.stringify({
      api_key: key, event_name: name, event_source: source, properties: p
    });
    if (w.fetch) {
      fetch(api, { method: "POST", body: body, keepalive: true, credentials: "omit" })
        .catch(function () {});
    } else if (navigator.sendBeacon) {
      navigator.sendBeacon(api, body);
    }
  }

  function pageView() {
    var page = loc.pathname + (hashMode ? loc.hash : "");
    if (page === lastPage) return;
    var props = { title: d.title, screen_width: w.innerWidth, language: navigator.language };
    // Only the first view can have an outside referrer.
    var ref = d.referrer;
    if (lastPage === null && ref && new URL(ref).origin !== loc.origin) props.referrer = ref;
    lastPage = page;
    send("page_view", props);
  }

  // Single-page apps: history calls, back and forward.
  ["pushState", "replaceState"].forEach(function (kind) {
    var original = w.history[kind];
    w.history[kind] = function () {
      var result = original.apply(this, arguments);
      pageView();
      return result;
    };
  });
  w.addEventListener("popstate", pageView);
  if (hashMode) w.addEventListener("hashchange", pageView);

  // data-downloads="pdf,zip", or empty for this list.
  var downloads = opt("downloads");
  var extensions = new RegExp("\\.(" + (downloads ? downloads.split(",").join("|")
    : "pdf|zip|gz|dmg|exe|csv|xlsx?|docx?|txt|mp\\d") + ")$", "i");

  function onClick(event) {
    if (event.type === "auxclick" && event.button !== 1) return;
    var el = event.target.closest && event.target.closest("a[href],[data-sa-event]");
    if (!el) return;
    var named = el.getAttribute("data-sa-event");
    if (named) {
      var props = {};
      for (var i = 0; i < el.attributes.length; i++) {
        var a = el.attributes[i];
        if (a.name.indexOf("data-sa-prop-") === 0) props[a.name.slice(13)] = a.value;
      }
      send(named, props);
    }
    if (!el.href || !/^https?:/.test(el.protocol)) return;
    if (downloads !== null && extensions.test(el.pathname)) {
      send("file_download", { link: el.href });
    } else if (has("outbound") && el.host !== loc.host) {
      send("outbound_click", { link: el.href });
    }
  }
  d.addEventListener("click", onClick, true);
  d.addEventListener("auxclick", onClick, true);

  w.sa = function (name, props) { send(name, props || {}); };
  pageView();
  for (var q = 0; q < queued.length; q++) w.sa.apply(null, queued[q]);
})(window, document);
