/* omnirelay web chat widget: one plain script, no dependencies (docs/channels/webchat.md).
 *
 *   <script src="https://relay.example.com/webchat/widget.js" data-key="wc_..." async></script>
 *
 * data-key: the connection's public widget key; data-open="true": start with the panel open.
 * The visitor's signed id is kept in localStorage, so a visitor keeps their conversation.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.getAttribute("data-key")) {
    return;
  }
  var key = script.getAttribute("data-key");
  var base = new URL(script.src, location.href);
  var wsUrl = (base.protocol === "https:" ? "wss://" : "ws://") + base.host + "/webchat/ws";
  var store = "omnirelay-webchat:" + key;
  var socket = null;
  var backoff = 500;
  var seen = {};
  var unread = [];
  var typingSent = 0;
  var counter = 0;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text) node.textContent = text;
    return node;
  }

  var root = el("div", "omnirelay-webchat");
  root.style.cssText =
    "position:fixed;right:16px;bottom:16px;z-index:2147483000;font:14px sans-serif;" +
    "display:flex;flex-direction:column;align-items:flex-end";
  var button = el("button", "omnirelay-webchat-button", "Chat");
  button.type = "button";
  button.style.cssText = "border:0;border-radius:20px;padding:10px 16px;color:#fff;cursor:pointer";
  var panel = el("div", "omnirelay-webchat-panel");
  panel.style.cssText =
    "display:none;width:300px;height:380px;background:#fff;border:1px solid #ccc;" +
    "border-radius:8px;flex-direction:column;overflow:hidden;margin-bottom:8px";
  var header = el("div", "omnirelay-webchat-title", "Chat");
  header.style.cssText = "padding:10px;color:#fff;font-weight:bold";
  var list = el("div", "omnirelay-webchat-messages");
  list.style.cssText = "flex:1;overflow-y:auto;padding:8px";
  var typing = el("div", "omnirelay-webchat-typing", "");
  typing.style.cssText = "padding:0 8px;color:#888;font-size:12px;min-height:16px";
  var form = el("form", "omnirelay-webchat-form");
  form.style.cssText = "display:flex;border-top:1px solid #eee";
  var input = el("input", "omnirelay-webchat-input");
  input.placeholder = "Type a message";
  input.maxLength = 4096;
  input.style.cssText = "flex:1;border:0;padding:10px;outline:none";
  var send = el("button", "omnirelay-webchat-send", "Send");
  send.type = "submit";
  send.style.cssText = "border:0;background:none;padding:0 12px;cursor:pointer";
  form.appendChild(input);
  form.appendChild(send);
  panel.appendChild(header);
  panel.appendChild(list);
  panel.appendChild(typing);
  panel.appendChild(form);
  root.appendChild(panel);
  root.appendChild(button);

  function colour(value) {
    button.style.background = value;
    header.style.background = value;
  }
  colour("#2563eb");

  function isOpen() {
    return panel.style.display !== "none";
  }

  function show(text, who, id) {
    var line = el("div", "omnirelay-webchat-msg omnirelay-webchat-" + who, text);
    if (id) line.setAttribute("data-id", id);
    line.style.cssText =
      "margin:4px 0;padding:6px 10px;border-radius:12px;max-width:80%;word-wrap:break-word;" +
      (who === "visitor" ? "margin-left:auto;background:#e8eefc" : "background:#f1f1f1");
    list.appendChild(line);
    list.scrollTop = list.scrollHeight;
    return line;
  }

  function frame(data) {
    if (socket && socket.readyState === 1) {
      socket.send(JSON.stringify(data));
      return true;
    }
    return false;
  }

  function markRead() {
    if (!isOpen() || document.visibilityState === "hidden") return;
    while (unread.length) {
      frame({ type: "read", id: unread.shift() });
    }
  }

  function onFrame(event) {
    var data;
    try {
      data = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (data.type === "welcome") {
      backoff = 500;
      try {
        localStorage.setItem(store, data.visitor);
      } catch (e) {}
      header.textContent = data.title;
      colour(data.colour);
    } else if (data.type === "message") {
      if (!seen[data.id]) {
        seen[data.id] = true;
        typing.textContent = "";
        show(data.text, "agent", data.id);
        unread.push(data.id);
      }
      frame({ type: "received", id: data.id });
      markRead();
    } else if (data.type === "echo") {
      show(data.text, "visitor");
    } else if (data.type === "ack") {
      var mine = list.querySelector('[data-id="' + data.id + '"]');
      if (mine) mine.setAttribute("data-state", "stored");
    } else if (data.type === "read") {
      // The operator has read what the visitor wrote so far.
      var written = list.querySelectorAll(".omnirelay-webchat-visitor");
      for (var i = 0; i < written.length; i++) written[i].setAttribute("data-read", "true");
    } else if (data.type === "typing") {
      typing.textContent = "typing\u2026";
      setTimeout(function () {
        typing.textContent = "";
      }, 4000);
    }
  }

  function connect() {
    var url = wsUrl + "?key=" + encodeURIComponent(key);
    var visitor = null;
    try {
      visitor = localStorage.getItem(store);
    } catch (e) {}
    if (visitor) url += "&visitor=" + encodeURIComponent(visitor);
    socket = new WebSocket(url);
    socket.onmessage = onFrame;
    socket.onclose = function (event) {
      socket = null;
      if (event.code === 4401) {
        // A visitor id this connection did not sign (its secret changed): start anew.
        try {
          localStorage.removeItem(store);
        } catch (e) {}
      }
      if (event.code === 4403) return; // this site may not use the widget
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 30000);
    };
  }

  button.addEventListener("click", function () {
    panel.style.display = isOpen() ? "none" : "flex";
    markRead();
    if (isOpen()) input.focus();
  });
  document.addEventListener("visibilitychange", markRead);
  input.addEventListener("input", function () {
    var now = Date.now();
    if (now - typingSent > 3000 && frame({ type: "typing" })) typingSent = now;
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    var id = "c" + Date.now().toString(36) + (counter++).toString(36);
    if (frame({ type: "message", id: id, text: text })) {
      show(text, "visitor", id);
      input.value = "";
    }
  });

  if (script.getAttribute("data-open") === "true") panel.style.display = "flex";
  (document.body || document.documentElement).appendChild(root);
  connect();
})();
