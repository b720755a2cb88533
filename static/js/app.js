/*
 * Sluice admin UI — progressive enhancements.
 *
 * No frameworks, no inline handlers (CSP: script-src 'self'). Behaviour is
 * attached through event delegation on `document`, so it also works for
 * markup that is swapped in later by [data-poll-url] polling.
 *
 *   form[data-confirm], button[data-confirm]  confirm() before submit/click
 *   [data-copy="element-id"]                  copy that element's text
 *   select[data-autosubmit]                   submit the enclosing form on change
 *   .flash .flash-close                        dismiss a flash message
 *   [data-poll-url] (+ data-poll-interval)     periodically refresh innerHTML
 *   [data-poll-reload]                         reload the page when polling ends (a
 *                                              finished run has more to show)
 *   [data-js-only]                             shown only when scripts run
 *   input[type=file][data-fill="textarea-id"]  put the chosen file's text there
 */
(function () {
  "use strict";

  var COPIED_LABEL = "Copied";
  var COPY_FAILED_LABEL = "Copy failed";
  var COPY_RESET_MS = 1600;
  var DEFAULT_POLL_MS = 2000;
  var MIN_POLL_MS = 250;
  var MAX_POLL_FAILURES = 5;

  // Forms whose submit was already confirmed via a button[data-confirm] click,
  // so that a form[data-confirm] does not ask a second time.
  var preConfirmed = typeof WeakSet === "function" ? new WeakSet() : null;

  function closest(node, selector) {
    while (node && node.nodeType !== 1) node = node.parentNode;
    return node && node.closest ? node.closest(selector) : null;
  }

  /* ---------------------------------------------------------------------
   * 1. Confirmation dialogs
   * ------------------------------------------------------------------- */

  function onClickConfirm(event) {
    var button = closest(event.target, "button[data-confirm], input[type=submit][data-confirm]");
    if (!button || button.disabled) return;
    var message = button.getAttribute("data-confirm") || "Are you sure?";
    if (!window.confirm(message)) {
      event.preventDefault();
      event.stopImmediatePropagation();
      return;
    }
    var form = button.form;
    if (form && preConfirmed && form.hasAttribute("data-confirm")) {
      preConfirmed.add(form);
      // The submit event follows the click synchronously; if it never comes
      // (e.g. native validation blocked it) forget the confirmation.
      setTimeout(function () { preConfirmed.delete(form); }, 0);
    }
  }

  function onSubmitConfirm(event) {
    var form = event.target;
    if (!form || form.tagName !== "FORM" || !form.hasAttribute("data-confirm")) return;
    if (preConfirmed && preConfirmed.has(form)) {
      preConfirmed.delete(form);
      return;
    }
    var message = form.getAttribute("data-confirm") || "Are you sure?";
    if (!window.confirm(message)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }

  /* ---------------------------------------------------------------------
   * 2. Copy to clipboard
   * ------------------------------------------------------------------- */

  function textOf(el) {
    if ("value" in el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA")) return el.value;
    return (el.textContent || "").trim();
  }

  function legacyCopy(text) {
    var ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.className = "sr-only";
    document.body.appendChild(ta);
    ta.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(ta);
    return ok;
  }

  function copyText(text) {
    // navigator.clipboard only exists in secure contexts (https / localhost);
    // self-hosted installs on plain http fall back to execCommand.
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(
        function () { return true; },
        function () { return legacyCopy(text); }
      );
    }
    return Promise.resolve(legacyCopy(text));
  }

  function flashLabel(button, label) {
    if (!button.hasAttribute("data-copy-original")) {
      button.setAttribute("data-copy-original", button.innerHTML);
    }
    clearTimeout(button._sluiceCopyTimer);
    button.textContent = label;
    button.classList.add("is-copied");
    button._sluiceCopyTimer = setTimeout(function () {
      button.innerHTML = button.getAttribute("data-copy-original");
      button.removeAttribute("data-copy-original");
      button.classList.remove("is-copied");
    }, COPY_RESET_MS);
  }

  function onClickCopy(event) {
    var button = closest(event.target, "[data-copy]");
    if (!button) return;
    event.preventDefault();
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) return;
    copyText(textOf(target)).then(function (ok) {
      flashLabel(button, ok ? COPIED_LABEL : COPY_FAILED_LABEL);
    });
  }

  /* ---------------------------------------------------------------------
   * 3. Auto-submitting selects
   * ------------------------------------------------------------------- */

  function onChangeAutosubmit(event) {
    var select = event.target;
    if (!select || select.tagName !== "SELECT" || !select.hasAttribute("data-autosubmit")) return;
    var form = select.form;
    if (!form) return;
    if (typeof form.requestSubmit === "function") {
      form.requestSubmit(); // fires the submit event (so data-confirm still applies)
    } else {
      form.submit();
    }
  }

  /* ---------------------------------------------------------------------
   * 4. Dismissable flash messages
   * ------------------------------------------------------------------- */

  function onClickFlashClose(event) {
    var close = closest(event.target, ".flash-close");
    if (!close) return;
    var flash = closest(close, ".flash");
    if (!flash) return;
    event.preventDefault();
    var stack = flash.parentNode;
    flash.parentNode.removeChild(flash);
    if (stack && stack.classList && stack.classList.contains("flash-stack") && !stack.querySelector(".flash")) {
      stack.parentNode && stack.parentNode.removeChild(stack);
    }
  }

  /* ---------------------------------------------------------------------
   * 5. Polling fragments
   * ------------------------------------------------------------------- */

  function sameOrigin(url) {
    try {
      return new URL(url, window.location.href).origin === window.location.origin;
    } catch (e) {
      return false;
    }
  }

  function startPolling(el) {
    if (el._sluicePolling) return;
    var url = el.getAttribute("data-poll-url");
    if (!url || !sameOrigin(url)) return;
    el._sluicePolling = true;

    var interval = parseInt(el.getAttribute("data-poll-interval"), 10);
    if (!isFinite(interval) || interval < MIN_POLL_MS) interval = DEFAULT_POLL_MS;
    var failures = 0;

    function stop() {
      el._sluicePolling = false;
      el.removeAttribute("aria-busy");
      el.setAttribute("data-poll-stopped", "");
    }

    function schedule() {
      setTimeout(tick, interval);
    }

    function tick() {
      if (!el.isConnected) return stop(); // element removed from the page
      if (document.hidden) return schedule(); // don't poll from background tabs
      el.setAttribute("aria-busy", "true");
      fetch(url, {
        method: "GET",
        credentials: "same-origin",
        cache: "no-store",
        headers: { "Accept": "text/html", "X-Requested-With": "fetch" }
      })
        .then(function (response) {
          var halt = (response.headers.get("X-Poll-Stop") || "").trim() === "1";
          if (!response.ok) {
            if (halt) return stop();
            throw new Error("HTTP " + response.status);
          }
          return response.text().then(function (html) {
            el.innerHTML = html;
            failures = 0;
            el.removeAttribute("aria-busy");
            if (!halt) return schedule();
            stop();
            if (el.hasAttribute("data-poll-reload")) window.location.reload();
          });
        })
        .catch(function () {
          el.removeAttribute("aria-busy");
          failures += 1;
          if (failures >= MAX_POLL_FAILURES) return stop();
          setTimeout(tick, interval * Math.pow(2, failures)); // back off
        });
    }

    schedule();
  }

  function initPolling(root) {
    var nodes = (root || document).querySelectorAll("[data-poll-url]");
    for (var i = 0; i < nodes.length; i++) startPolling(nodes[i]);
  }

  /* ---------------------------------------------------------------------
   * 6. Files read into text areas (the text area alone works without JS)
   * ------------------------------------------------------------------- */

  function onChangeFill(event) {
    var input = event.target;
    if (!input || input.type !== "file" || !input.hasAttribute("data-fill")) return;
    var target = document.getElementById(input.getAttribute("data-fill"));
    var file = input.files && input.files[0];
    if (!target || !file || typeof FileReader !== "function") return;
    var reader = new FileReader();
    reader.onload = function () { target.value = String(reader.result); };
    reader.readAsText(file);
  }

  function revealScriptOnly(root) {
    var nodes = (root || document).querySelectorAll("[data-js-only]");
    for (var i = 0; i < nodes.length; i++) nodes[i].hidden = false;
  }

  /* ---------------------------------------------------------------------
   * Boot
   * ------------------------------------------------------------------- */

  function init() {
    document.addEventListener("click", onClickConfirm, true);
    document.addEventListener("submit", onSubmitConfirm, true);
    document.addEventListener("click", onClickCopy);
    document.addEventListener("click", onClickFlashClose);
    document.addEventListener("change", onChangeAutosubmit);
    document.addEventListener("change", onChangeFill);
    revealScriptOnly(document);
    initPolling(document);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
