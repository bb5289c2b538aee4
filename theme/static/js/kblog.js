/* kblog: copy buttons for terminals and console blocks.
   Only what was typed is copied, never the prompts or the output.
   Without this script the pages read the same; the buttons just stay hidden. */
(function () {
  "use strict";

  var FEEDBACK_MS = 1600;

  function copyWithTextarea(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.top = "0";
    area.style.left = "-9999px";
    document.body.appendChild(area);
    area.select();
    var copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (err) {
      copied = false;
    }
    document.body.removeChild(area);
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () {
        return copyWithTextarea(text);
      });
    }
    return copyWithTextarea(text);
  }

  function showResult(button, state, label) {
    var idle = button.getAttribute("data-label") || "Copy";
    button.textContent = label;
    button.setAttribute("data-state", state);
    window.clearTimeout(button._kbTimer);
    button._kbTimer = window.setTimeout(function () {
      button.textContent = idle;
      button.removeAttribute("data-state");
    }, FEEDBACK_MS);
  }

  function wire(button, getText) {
    button.setAttribute("data-label", button.textContent || "Copy");
    button.setAttribute("aria-live", "polite");
    button.addEventListener("click", function () {
      copyText(getText()).then(
        function () { showResult(button, "copied", "Copied"); },
        function () { showResult(button, "failed", "Copy failed"); }
      );
    });
  }

  /* An executed step: each typed command is one .kb-cmd element. */
  function stepCommands(step) {
    var commands = [];
    step.querySelectorAll(".kb-cmd").forEach(function (cmd) {
      commands.push(cmd.textContent);
    });
    return commands.join("\n");
  }

  /* A plain highlighted console block: keep the lines that begin with a prompt
     (Pygments marks "$ ", ">>> " and "... " as .gp), without the prompt itself. */
  function promptedLines(block) {
    var walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT);
    var lines = [];
    var current = { text: "", typed: false };
    var node;
    while ((node = walker.nextNode())) {
      var parent = node.parentElement;
      if (parent && parent.closest(".kb-copy")) continue;
      var isPrompt = parent && parent.closest(".gp") !== null;
      if (isPrompt && current.text.trim() === "" && !current.typed) {
        current.typed = true;
        current.text = "";
        continue;
      }
      var pieces = node.data.split("\n");
      for (var i = 0; i < pieces.length; i++) {
        if (i > 0) {
          lines.push(current);
          current = { text: "", typed: false };
        }
        current.text += pieces[i];
      }
    }
    lines.push(current);
    return lines
      .filter(function (line) { return line.typed; })
      .map(function (line) { return line.text.replace(/\s+$/, ""); })
      .join("\n");
  }

  function makeButton() {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "kb-copy";
    button.textContent = "Copy";
    button.title = "Copy the commands (without prompts or output)";
    return button;
  }

  function init() {
    /* One button per terminal head; with one panel per kernel, each copies its own. */
    document.querySelectorAll(".kb-step .kb-copy").forEach(function (button) {
      var scope = button.closest(".kb-kpanel") || button.closest(".kb-step");
      if (scope.querySelector(".kb-cmd") === null) return;
      button.hidden = false;
      wire(button, function () { return stepCommands(scope); });
    });

    document.querySelectorAll(".highlight").forEach(function (block) {
      if (block.closest(".kb-step") || block.closest(".kb-klog")) return;
      if (block.parentElement && block.parentElement.closest(".highlight")) return;
      if (block.querySelector(".gp") === null) return;
      var button = makeButton();
      wire(button, function () { return promptedLines(block); });
      block.appendChild(button);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
