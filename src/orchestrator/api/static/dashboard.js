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

  // --- writes: new task, cancel, resume, retry, approve, reject (the token: saved here, or the link's cookie) --------

  function write(method, url, body) {
    var headers = { Accept: "application/json" };
    var saved = savedToken();
    if (saved) headers.Authorization = "Bearer " + saved;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(url, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (response) {
      return response.json().then(
        function (document) {
          if (response.ok) return document;
          var why = response.status === 401 ? "open the link orch serve printed, or save the token on the Alerts page: " : "";
          throw new Error(why + (document.error || "HTTP " + response.status));
        },
        function () {
          throw new Error("HTTP " + response.status);
        }
      );
    });
  }

  function say(id, text) {
    var box = document.getElementById(id);
    if (!box) return;
    box.textContent = text;
    box.hidden = !text;
  }

  var newTask = document.getElementById("new-task");
  if (newTask) {
    newTask.addEventListener("submit", function (event) {
      event.preventDefault();
      var data = new FormData(newTask);
      var button = newTask.querySelector("button[type=submit]");
      button.disabled = true;
      write("POST", "/tasks", {
        repo: data.get("repo"),
        title: String(data.get("title") || "").trim(),
        description: String(data.get("description") || ""),
      })
        .then(function (task) {
          window.location.href = "/ui/tasks/" + encodeURIComponent(task.id);
        })
        .catch(function (error) {
          button.disabled = false;
          say("new-task-error", error.message);
        });
    });
  }

  // The task page's buttons follow the task's state (read from the fragment after each swap).
  function syncActions() {
    // "waiting": blocked in a stage only a person can pass; resuming it would block it again.
    var when = {
      cancel: ["active", "blocked", "waiting"],
      resume: ["blocked"],
      retry: ["failed"],
      approve: ["waiting"],
      reject: ["waiting"],
    };
    var head = document.querySelector("[data-task-page]");
    if (!head) return;
    var state = head.getAttribute("data-waits") === "person" ? "waiting" : head.getAttribute("data-state");
    document.querySelectorAll("button[data-action]").forEach(function (button) {
      var action = button.getAttribute("data-action");
      button.hidden = (when[action] || []).indexOf(state) < 0;
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (!button) return;
    var action = button.getAttribute("data-action");
    if (action === "cancel" && !window.confirm("Cancel this task? Its running job is killed.")) return;
    var body;
    if (action === "approve") body = { note: "" };
    if (action === "reject") {
      var reason = window.prompt("Why is it rejected? The next round reads this.");
      if (!reason || !reason.trim()) return;
      body = { reason: reason };
    }
    button.disabled = true;
    var url = "/tasks/" + encodeURIComponent(button.getAttribute("data-task")) + "/" + action;
    write("POST", url, body)
      .then(function () {
        say("action-error", "");
        refresh();
      })
      .catch(function (error) {
        say("action-error", error.message);
      })
      .then(function () {
        button.disabled = false;
      });
  });

  // --- the live log of the task's running job --------------------------------------------

  var logPane = document.getElementById("job-log");
  var following = null; // the job whose log is streaming

  function followLog() {
    if (!logPane) return;
    var task = logPane.getAttribute("data-task");
    fetch("/tasks/" + encodeURIComponent(task) + "/jobs", { cache: "no-store" })
      .then(function (response) {
        return response.ok ? response.json() : [];
      })
      .then(function (jobs) {
        var running = jobs.filter(function (job) {
          return job.status === "running";
        }).pop();
        if (!running || running.id === following) return;
        following = running.id;
        var label = document.getElementById("log-job");
        label.textContent = "job " + running.id + ": " + running.stage + ", round " + running.round;
        logPane.textContent = "";
        stream(task, running.id);
      })
      .catch(function () {});
  }

  function stream(task, job) {
    var url = "/tasks/" + encodeURIComponent(task) + "/jobs/" + job + "/log?follow=true&readable=true";
    fetch(url, { cache: "no-store" }).then(function (response) {
      if (!response.ok || !response.body) {
        following = null; // no log yet: the next look tries again
        return;
      }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      function pump() {
        return reader.read().then(function (part) {
          if (part.done || following !== job) return;
          var atEnd = logPane.scrollTop + logPane.clientHeight >= logPane.scrollHeight - 4;
          logPane.textContent += decoder.decode(part.value, { stream: true });
          if (atEnd) logPane.scrollTop = logPane.scrollHeight;
          return pump();
        });
      }
      return pump();
    });
  }

  // --- the branch's changes, loaded when opened ------------------------------------------

  var changes = document.getElementById("changes");
  if (changes) {
    changes.addEventListener("toggle", function () {
      if (!changes.open) return;
      var body = document.getElementById("changes-body");
      var task = changes.getAttribute("data-task");
      fetch("/tasks/" + encodeURIComponent(task) + "/changes", { cache: "no-store" })
        .then(function (response) {
          return response.json().then(function (document) {
            if (!response.ok) throw new Error(document.error || "HTTP " + response.status);
            return document;
          });
        })
        .then(function (found) {
          body.textContent = "";
          var list = document.createElement("ul");
          list.className = "commits";
          found.commits.forEach(function (commit) {
            var item = document.createElement("li");
            var sha = document.createElement("code");
            sha.textContent = commit.sha.slice(0, 12);
            item.appendChild(sha);
            item.appendChild(document.createTextNode(" " + commit.subject + " (" + commit.author + ")"));
            list.appendChild(item);
          });
          if (!found.commits.length) list.innerHTML = "<li class='muted'>no commits yet</li>";
          var diff = document.createElement("pre");
          diff.className = "diff";
          diff.textContent = found.diff || "(no changes)";
          body.appendChild(list);
          body.appendChild(diff);
          if (found.truncated) body.appendChild(document.createTextNode("(the first megabyte)"));
        })
        .catch(function (error) {
          body.textContent = error.message;
        });
    });
  }

  document.addEventListener("orch:updated", function () {
    syncActions();
    followLog();
  });
  tokenForm();
  syncActions();
  followLog();
  if (logPane) window.setInterval(followLog, 1000);
  listen();
})();
