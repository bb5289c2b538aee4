/* kblog: a post's run replayed in one asciinema player (plugins/kblog_snippets/replay.py
   makes the recordings; theme/templates/kblog/replay.html the section).
   All the sessions of a run share one clock, so switching terminals keeps the moment.
   Following the post, the player shows whichever terminal the latest step typed in,
   and that step's block is marked on the page; each block's "Watch" link plays from
   its first step. Without this script the section only lists the recordings. */
(function () {
  "use strict";

  var POLL_MS = 200;

  function init() {
    var section = document.getElementById("kb-replay");
    if (!section || !window.AsciinemaPlayer || !window.kblogReplay) return;
    var all = window.kblogReplay[section.getAttribute("data-post")];
    if (!all) return;
    var kernels = Object.keys(all);
    if (kernels.length === 0) return;
    var box = section.querySelector(".kb-replay-player");
    var follow = section.querySelector(".kb-replay-follow input");
    var opts = {
      cols: Number(section.getAttribute("data-cols")),
      rows: Number(section.getAttribute("data-rows"))
    };
    /* `from`: where the player was last put; until it gets there, the replay is there
       (a player that starts at a step may report a moment just before it at first). */
    var state = {
      kernel: kernels[0], session: "", player: null, playing: false, from: -1, time: 0
    };
    var blocks = Array.prototype.slice.call(document.querySelectorAll(".kb-step[data-step]"));

    function run() { return all[state.kernel]; }

    /* The number of the latest step started at or before `t` (replay seconds). */
    function stepAt(t) {
      var steps = run().steps;
      var found = "";
      Object.keys(steps).forEach(function (n) {
        if (steps[n][1] <= t + 0.001 && (found === "" || steps[n][1] >= steps[found][1])) {
          found = n;
        }
      });
      return found;
    }

    function firstSession() {
      var first = run().steps["1"];
      return first ? first[0] : Object.keys(run().casts)[0];
    }

    function press(selector, attr, value) {
      section.querySelectorAll(selector).forEach(function (button) {
        button.setAttribute("aria-pressed", String(button.getAttribute(attr) === value));
      });
    }

    /* Mark the block whose steps include step `n` (blocks carry their first step). */
    function markBlock(n) {
      var current = null;
      blocks.forEach(function (block) {
        if (n !== "" && Number(block.getAttribute("data-step")) <= Number(n)) current = block;
      });
      blocks.forEach(function (block) {
        block.classList.toggle("kb-playing", block === current);
      });
    }

    /* The player answers the time by a promise: `state.time` is its latest answer. */
    function tick() {
      var player = state.player;
      if (!player) return;
      Promise.resolve(player.getCurrentTime()).then(function (time) {
        if (player === state.player) moved(Number(time) || 0);
      });
    }

    function moved(t) {
      if (state.from >= 0) {
        if (t + 0.01 >= state.from) state.from = -1;
        else t = state.from;
      }
      state.time = t;
      section.setAttribute("data-time", t.toFixed(2));
      var n = stepAt(t);
      markBlock(n);
      if (follow && follow.checked && state.playing && n !== "") {
        var session = run().steps[n][0];
        if (session !== state.session) show(session, t, true);
      }
    }

    function show(session, at, play) {
      if (state.player) state.player.dispose();
      box.textContent = "";
      state.session = session;
      state.playing = false;
      state.from = at;
      state.time = at;
      var player = window.AsciinemaPlayer.create({ data: run().casts[session] }, box, {
        cols: opts.cols,
        rows: opts.rows,
        /* No idleTimeLimit: replay.py cut the silences already, on the run's one
           clock; the player would cut each terminal's own and lose the moment. */
        fit: "width",
        preload: true,
        startAt: at,
        autoPlay: play
      });
      player.addEventListener("playing", function () { state.playing = true; });
      player.addEventListener("play", function () { state.playing = true; });
      player.addEventListener("pause", function () { state.playing = false; });
      player.addEventListener("ended", function () { state.playing = false; });
      state.player = player;
      section.setAttribute("data-session", session);
      section.setAttribute("data-kernel", state.kernel);
      section.querySelectorAll(".kb-replay-note").forEach(function (note) {
        note.hidden = note.getAttribute("data-kernel") !== state.kernel;
      });
      press(".kb-replay-session", "data-session", session);
      press(".kb-replay-kernel", "data-kernel", state.kernel);
      section.querySelectorAll(".kb-replay-session").forEach(function (button) {
        button.disabled = !(button.getAttribute("data-session") in run().casts);
      });
    }

    function now() {
      return state.time;
    }

    section.querySelectorAll(".kb-replay-session").forEach(function (button) {
      button.addEventListener("click", function () {
        if (follow) follow.checked = false; /* the reader chose a terminal: keep it */
        show(button.getAttribute("data-session"), now(), state.playing);
      });
    });
    section.querySelectorAll(".kb-replay-kernel").forEach(function (button) {
      button.addEventListener("click", function () {
        var t = now();
        state.kernel = button.getAttribute("data-kernel");
        /* The same moment on the other kernel: in the terminal the post is at then,
           when following it, else in the same terminal if that kernel's run has it. */
        var n = stepAt(t);
        var session = state.session in run().casts ? state.session : firstSession();
        if (n !== "" && follow && follow.checked) session = run().steps[n][0];
        show(session, t, state.playing);
      });
    });

    blocks.forEach(function (block) {
      var n = block.getAttribute("data-step");
      block.querySelectorAll(".kb-watch").forEach(function (link) {
        if (!(n in run().steps)) return; /* a step that never ran has no moment */
        link.hidden = false;
        link.addEventListener("click", function (event) {
          event.preventDefault();
          var panel = link.closest(".kb-kpanel");
          var kernel = panel ? panel.getAttribute("data-kernel") : state.kernel;
          if (kernel in all && n in all[kernel].steps) state.kernel = kernel;
          var where = run().steps[n];
          show(where[0], where[1], true);
          section.scrollIntoView({ block: "start" });
        });
      });
    });

    section.querySelector(".kb-replay-controls").hidden = false;
    show(firstSession(), 0, false);
    window.setInterval(tick, POLL_MS);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
