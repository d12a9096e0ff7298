// The dashboard's live updates: listen to /ui/events and, on a change, fetch the fragment of
// the current page and swap it in (no reload). Plain JS, no framework, nothing from a CDN.
(function () {
  "use strict";

  var TOKEN_KEY = "orch-api-token";
  var live = document.getElementById("live");
  var status = document.getElementById("live-status");
  var token = document.body.getAttribute("data-token");
  var busy = false;
  var again = false;

  function setStatus(text, kind) {
    if (!status) return;
    status.textContent = text;
    status.className = "live-status " + (kind || "");
  }

  // <details> a person opened or closed keep their state across a swap.
  function detailsState(root) {
    var state = {};
    root.querySelectorAll("details[data-key]").forEach(function (d) {
      state[d.getAttribute("data-key")] = d.open;
    });
    return state;
  }

  function refresh() {
    if (!live || !live.getAttribute("data-fragment")) return;
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    fetch(live.getAttribute("data-fragment"), { cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var kept = detailsState(live);
        live.innerHTML = html;
        live.querySelectorAll("details[data-key]").forEach(function (d) {
          var key = d.getAttribute("data-key");
          if (Object.prototype.hasOwnProperty.call(kept, key)) d.open = kept[key];
        });
        document.dispatchEvent(new CustomEvent("orch:updated"));
      })
      .catch(function (error) {
        setStatus("update failed: " + error.message, "bad");
      })
      .then(function () {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  function listen() {
    if (!window.EventSource) {
      setStatus("no live updates", "bad");
      return;
    }
    var source = new EventSource("/ui/events");
    source.addEventListener("open", function () {
      setStatus("live", "ok");
    });
    source.addEventListener("error", function () {
      setStatus("reconnecting…", "bad");
    });
    source.addEventListener("change", function (event) {
      setStatus("live", "ok");
      if (event.data !== token) {
        token = event.data;
        refresh();
      }
    });
  }

  // --- the API token (only needed when the server has ORCH_API_TOKEN) ---------------------

  function savedToken() {
    try {
      return window.localStorage.getItem(TOKEN_KEY) || "";
    } catch (e) {
      return "";
    }
  }

  function tokenForm() {
    var form = document.getElementById("token-form");
    if (!form) return;
    var input = document.getElementById("api-token");
    var note = document.getElementById("token-note");
    note.textContent = savedToken() ? "a token is saved in this browser" : "";
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      window.localStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = "";
      note.textContent = "saved in this browser";
    });
    document.getElementById("token-forget").addEventListener("click", function () {
      window.localStorage.removeItem(TOKEN_KEY);
      note.textContent = "forgotten";
    });
  }

  function showError(text) {
    var box = document.getElementById("ack-error");
    if (!box) return;
    box.textContent = text;
    box.hidden = !text;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-ack]");
    if (!button) return;
    var headers = { Accept: "application/json" };
    var saved = savedToken();
    if (saved) headers.Authorization = "Bearer " + saved;
    button.disabled = true;
    fetch("/alerts/" + encodeURIComponent(button.getAttribute("data-ack")) + "/ack", {
      method: "POST",
      headers: headers,
    })
      .then(function (response) {
        if (response.ok) {
          showError("");
          refresh();
          return;
        }
        button.disabled = false;
        return response.json().then(
          function (body) {
            var why = response.status === 401 ? "set the API token above: " : "";
            showError(why + (body.error || "HTTP " + response.status));
          },
          function () {
            showError("HTTP " + response.status);
          }
        );
      })
      .catch(function (error) {
        button.disabled = false;
        showError(error.message);
      });
  });

  tokenForm();
  listen();
})();
