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
 *   input[type=file][data-fill-data-url="id"]  put the chosen file there as a data: URL
 *   form[data-preview-url]                     the flow editor: [data-pick] buttons put a
 *                                              source field where the member types,
 *                                              select[data-pick-row] fills its row, and
 *                                              each row's [data-preview-row] cell shows
 *                                              its value on the sample as they change;
 *                                              button[data-remove-row] drops its row
 *   [data-shown-for-trigger="kind …"]          shown only while select#trigger has one
 *                                              of these values (all shown without JS)
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
    if (!input || input.type !== "file") return;
    var asText = input.hasAttribute("data-fill");
    var id = input.getAttribute(asText ? "data-fill" : "data-fill-data-url");
    var target = id && document.getElementById(id);
    var file = input.files && input.files[0];
    if (!target || !file || typeof FileReader !== "function") return;
    var reader = new FileReader();
    reader.onload = function () { target.value = String(reader.result); };
    if (asText) reader.readAsText(file); else reader.readAsDataURL(file);
  }

  function revealScriptOnly(root) {
    var nodes = (root || document).querySelectorAll("[data-js-only]");
    for (var i = 0; i < nodes.length; i++) nodes[i].hidden = false;
  }

  /* ---------------------------------------------------------------------
   * 7. Mapping by picking, with a live preview (the form works without it: the
   *    per-row lists are plain selects and every submit previews on the server)
   * ------------------------------------------------------------------- */

  var PREVIEW_DELAY_MS = 250;
  var PLAIN_PATH = /^record(\.[A-Za-z_][A-Za-z0-9_]*|\["(?:[^"\\]|\\.)*"\])*$/;
  var lastExpression = null;
  var previewTimer = null;

  function expressionOf(form, row) {
    return form.querySelector('input[data-expression-row="' + row + '"]');
  }

  function pickListOf(form, row) {
    return form.querySelector('select[data-pick-row="' + row + '"]');
  }

  // The row's list shows its field when the expression is one, and nothing otherwise,
  // so a submitted list never overrides an expression typed after a pick.
  function syncPickList(form, input) {
    var list = pickListOf(form, input.getAttribute("data-expression-row"));
    if (!list) return;
    var value = input.value.trim();
    var known = false;
    for (var i = 0; i < list.options.length; i++) {
      if (list.options[i].value === value) known = true;
    }
    list.value = known ? value : "";
  }

  function schedulePreview(form) {
    if (!form || !form.hasAttribute("data-preview-url")) return;
    var sample = form.querySelector('input[name="sample"]');
    if (!sample || !sample.value) return;
    if (previewTimer) clearTimeout(previewTimer);
    previewTimer = setTimeout(function () { requestPreview(form); }, PREVIEW_DELAY_MS);
  }

  function requestPreview(form) {
    var body = new URLSearchParams(new FormData(form));
    fetch(form.getAttribute("data-preview-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json" },
      body: body
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (answer) {
      if (!answer || !answer.rows) return;
      var cells = form.querySelectorAll("[data-preview-row]");
      for (var i = 0; i < cells.length; i++) {
        var shown = answer.rows[cells[i].getAttribute("data-preview-row")];
        cells[i].textContent = shown ? (shown.error || shown.value) : "";
        cells[i].classList.toggle("preview-error", !!(shown && shown.error));
      }
    }).catch(function () { /* the next change or submit previews again */ });
  }

  function targetForPick(form) {
    if (lastExpression && form.contains(lastExpression)) return lastExpression;
    var inputs = form.querySelectorAll("input[data-expression-row]");
    for (var i = 0; i < inputs.length; i++) {
      if (!inputs[i].value.trim()) return inputs[i];
    }
    return null;
  }

  function onClickPick(event) {
    var button = closest(event.target, "button[data-pick]");
    if (!button) return;
    var form = closest(button, "form");
    var input = form && targetForPick(form);
    if (!input) return;
    var path = button.getAttribute("data-pick");
    var current = input.value.trim();
    if (!current || PLAIN_PATH.test(current)) {
      input.value = path;
    } else {
      // Inside a longer expression: insert where the caret was.
      var at = typeof input.selectionStart === "number" ? input.selectionStart : input.value.length;
      var end = typeof input.selectionEnd === "number" ? input.selectionEnd : at;
      input.value = input.value.slice(0, at) + path + input.value.slice(end);
    }
    syncPickList(form, input);
    lastExpression = input;
    input.focus();
    schedulePreview(form);
  }

  // Without scripts "Remove" submits and the page comes back without the row.
  function onClickRemoveRow(event) {
    var button = closest(event.target, "button[data-remove-row]");
    if (!button) return;
    var row = closest(button, "tr");
    var form = closest(button, "form");
    if (!row || !form) return;
    event.preventDefault();
    row.parentNode.removeChild(row);
    schedulePreview(form);
  }

  function onFocusExpression(event) {
    var input = event.target;
    if (input && input.hasAttribute && input.hasAttribute("data-expression-row")) lastExpression = input;
  }

  function onChangeMapping(event) {
    var el = event.target;
    var form = el && closest(el, "form[data-preview-url]");
    if (!form) return;
    if (el.hasAttribute("data-pick-row")) {
      var input = expressionOf(form, el.getAttribute("data-pick-row"));
      if (input && el.value) input.value = el.value;
    } else if (el.hasAttribute("data-expression-row")) {
      syncPickList(form, el);
    } else if (!/^mapping\.|^lookups$/.test(el.name || "")) {
      return;
    }
    schedulePreview(form);
  }

  /* ---------------------------------------------------------------------
   * 8. Trigger fields for the chosen trigger only
   * ------------------------------------------------------------------- */

  function showTriggerFields() {
    var trigger = document.getElementById("trigger");
    if (!trigger) return;
    var nodes = document.querySelectorAll("[data-shown-for-trigger]");
    for (var i = 0; i < nodes.length; i++) {
      var kinds = nodes[i].getAttribute("data-shown-for-trigger").split(" ");
      nodes[i].hidden = kinds.indexOf(trigger.value) < 0;
    }
  }

  function onChangeTrigger(event) {
    if (event.target && event.target.id === "trigger") showTriggerFields();
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
    document.addEventListener("click", onClickPick);
    document.addEventListener("click", onClickRemoveRow);
    document.addEventListener("focusin", onFocusExpression);
    document.addEventListener("input", onChangeMapping);
    document.addEventListener("change", onChangeMapping);
    document.addEventListener("change", onChangeTrigger);
    showTriggerFields();
    revealScriptOnly(document);
    initPolling(document);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
