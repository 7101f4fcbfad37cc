// Play in the page: a world model's start.onnx and step.onnx run in the browser with
// onnxruntime-web (wasm), in a game loop at the environment's real rate. The server sends one
// game description per game (worldsim/app/webplay.py: the start frames, keys, fps, the files);
// after that no step asks the server anything, and play goes on offline.
//
// The page exposes window.worldsimPlay: actionsText() (the game's actions as action text, for
// "Check against reality" and "Game as MP4") and stats() (steps, frames/s, engine).

const ORT_DIR = new URL("./ort/", import.meta.url).href;
const ROOT = new URL("../../", import.meta.url).href; // the app's root, where /worldsim/... lives
const ROLES = {
  ArrowLeft: "left", a: "left", ArrowRight: "right", d: "right",
  ArrowUp: "up", w: "up", ArrowDown: "down", s: "down", " ": "space",
};
const ROLE_ORDER = ["left", "up", "down", "right", "space"];
const ROLE_LABELS = { left: "◀", right: "▶", up: "▲", down: "▼", space: "␣" };
const MAX_HISTORY = 6000; // steps the timeline keeps (two minutes of CartPole): a few MB of states
const MAX_BEHIND = 3; // steps the loop may owe before it drops them: play never lags behind

let ortPromise = null;
const sessions = new Map(); // model files -> Promise<{start, step}>, kept for the page's life
let game = null; // the game on screen
let shownId = null; // the id of the description it came from
let lastText = null;

function loadOrt() {
  if (!ortPromise) {
    ortPromise = import(ORT_DIR + "ort.wasm.min.mjs").then((module) => {
      const ort = module.default ?? module;
      ort.env.wasm.wasmPaths = ORT_DIR;
      ort.env.wasm.numThreads = self.crossOriginIsolated
        ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
      return ort;
    });
  }
  return ortPromise;
}

function modelSessions(ort, config) {
  const key = config.files.start + "|" + config.files.step;
  if (!sessions.has(key)) {
    const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
    const open = (path) => ort.InferenceSession.create(ROOT + path, options);
    const opened = Promise.all([open(config.files.start), open(config.files.step)])
      .then(([start, step]) => ({ start, step }));
    opened.catch(() => sessions.delete(key));
    sessions.set(key, opened);
  }
  return sessions.get(key);
}

const $ = (id) => document.getElementById(id);
const visible = (el) => !!el && el.offsetParent !== null;

function fromBase64(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

// --- One game -------------------------------------------------------------------------------

class Game {
  constructor(config, ort, models) {
    this.config = config;
    this.ort = ort;
    this.models = models;
    this.fps = config.fps;
    this.speed = 1;
    this.paused = false;
    this.held = new Map(); // role -> when pressed (the last pressed wins for discrete actions)
    this.alternate = 0; // CartPole's "no key": left, right, left, ...
    this.busy = false;
    this.clock = null; // [start time, steps since] of the real-time schedule
    this.stepTimes = [];
    this.context = fromBase64(config.context);
    const [k, h, w] = config.context_shape;
    this.h = h;
    this.w = w;
    this.startFrame = this.context.subarray((k - 1) * h * w * 3);
    this.image = new ImageData(w, h);
  }

  async begin() {
    const shape = [1, ...this.config.context_shape];
    const input = new this.ort.Tensor("uint8", this.context, shape);
    const out = await this.models.start.run({ context: input });
    this.start = out; // z, h, ref_z, ref, offset (whatever start.onnx gives)
    this.reset();
  }

  reset() {
    this.state = { ...this.start };
    this.history = [this.pick(this.state)]; // history[t]: the changing state after t steps
    this.actions = []; // actions[t] led from step t to t + 1
    this.rewards = [];
    this.ended = [];
    this.position = 0;
    this.clock = null;
    this.draw(this.startFrame);
    this.update();
  }

  pick(state) {
    const kept = {};
    for (const name of this.models.step.outputNames) {
      if (name.endsWith("_next")) kept[name.slice(0, -5)] = state[name.slice(0, -5)];
    }
    return kept;
  }

  // The action of the keys held now.
  action() {
    const c = this.config;
    const held = [...this.held.entries()].filter(([role]) => c.keys[role]);
    if (c.action_kind === "continuous") {
      if (!held.length) return c.noop;
      const sum = c.action_low.map(() => 0);
      for (const [role] of held) c.keys[role].value.forEach((v, i) => { sum[i] += v; });
      return sum.map((v, i) => Math.min(c.action_high[i], Math.max(c.action_low[i], +v.toFixed(4))));
    }
    if (held.length) return c.keys[held.sort((a, b) => b[1] - a[1])[0][0]].value;
    if (c.noop !== null) return c.noop;
    this.alternate ^= 1;
    return c.keys[this.alternate ? "left" : "right"].value;
  }

  actionTensor(action) {
    if (this.config.action_kind === "discrete") {
      return new this.ort.Tensor("int64", BigInt64Array.from([BigInt(action)]), [1]);
    }
    return new this.ort.Tensor("float32", Float32Array.from(action), [1, action.length]);
  }

  async run(state, action) {
    return this.models.step.run({ ...state, action: this.actionTensor(action) });
  }

  async step() {
    if (this.position >= MAX_HISTORY) {
      this.paused = true;
      this.note(`The timeline holds ${MAX_HISTORY} steps: restart, or go back and branch.`);
      this.update();
      return;
    }
    const action = this.action();
    const out = await this.run(this.state, action);
    if (this !== game) return; // a new game began meanwhile
    if (this.position < this.actions.length) this.truncate(this.position); // a branch
    for (const name of Object.keys(out)) {
      if (name.endsWith("_next")) this.state[name.slice(0, -5)] = out[name];
    }
    this.actions.push(action);
    if (out.reward) {
      this.rewards.push(out.reward.data[0]);
      this.ended.push(!!out.terminated.data[0] || this.over());
    }
    this.position += 1;
    this.history.push(this.pick(this.state));
    this.draw(out.frame.data);
    const now = performance.now();
    this.stepTimes.push(now);
    while (this.stepTimes.length && now - this.stepTimes[0] > 1000) this.stepTimes.shift();
    this.update();
  }

  truncate(keep) {
    this.history.length = keep + 1;
    this.actions.length = keep;
    this.rewards.length = Math.min(this.rewards.length, keep);
    this.ended.length = Math.min(this.ended.length, keep);
  }

  // Show step t of the timeline (the frame is drawn again from the state before it).
  async seek(t) {
    t = Math.max(0, Math.min(t, this.actions.length));
    this.position = t;
    this.state = { ...this.start, ...this.history[t] };
    if (t === 0) this.draw(this.startFrame);
    else {
      const out = await this.run({ ...this.start, ...this.history[t - 1] }, this.actions[t - 1]);
      this.draw(out.frame.data);
    }
    this.update();
  }

  async undo() {
    this.paused = true;
    const t = Math.max(0, this.position - 1);
    await this.seek(t);
    this.truncate(t);
    this.update();
  }

  over() {
    return this.position > 0 && this.ended.length >= this.position && this.ended[this.position - 1];
  }

  score() {
    let total = 0;
    for (let t = 0; t < Math.min(this.position, this.rewards.length); t++) {
      total += this.rewards[t];
      if (this.ended[t]) break; // the score stops where the model says the episode ended
    }
    return total;
  }

  rate() {
    return this.stepTimes.length;
  }

  draw(rgb) {
    const canvas = $("webplay-canvas");
    if (!canvas) return;
    if (canvas.width !== this.w || canvas.height !== this.h) {
      canvas.width = this.w;
      canvas.height = this.h;
    }
    const px = this.image.data;
    for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
      px[j] = rgb[i]; px[j + 1] = rgb[i + 1]; px[j + 2] = rgb[i + 2]; px[j + 3] = 255;
    }
    canvas.getContext("2d").putImageData(this.image, 0, 0);
    canvas.dataset.step = String(this.position);
  }

  note(text) {
    const el = $("webplay-note");
    if (el) el.textContent = text;
  }

  update() {
    const c = this.config;
    const set = (id, text) => { const el = $(id); if (el && el.textContent !== text) el.textContent = text; };
    set("webplay-counter", `Step ${this.position} of ${this.actions.length}`);
    set("webplay-rate", this.paused ? "paused" : `${this.rate()} frames/s (real time ${c.fps * this.speed})`);
    if (c.outcome) set("webplay-score", `score ${this.score().toFixed(1)}`);
    const banner = $("webplay-banner");
    if (banner) {
      const over = this.over();
      banner.hidden = !over;
      // The dream plays on past the end (a branch from before it is a step back away), so the
      // banner says where the episode ended and what it scored there.
      if (over) {
        const end = this.ended.indexOf(true) + 1;
        banner.textContent = `Game over at step ${end}: the model predicts the episode ended there · `
          + `score ${this.score().toFixed(1)} · the dream plays on; Restart (R) plays again`;
      }
    }
    const pause = $("webplay-pause");
    if (pause) pause.textContent = this.paused ? "Play (P)" : "Pause (P)";
    const timeline = $("webplay-timeline");
    if (timeline) {
      timeline.max = String(this.actions.length);
      timeline.value = String(this.position);
    }
  }

  actionsText() {
    const c = this.config;
    const tokens = this.actions.slice(0, this.position).map((a) =>
      c.action_kind === "discrete" ? c.action_names[a]
        : a.length === 1 ? String(a[0]) : "[" + a.join(",") + "]");
    const runs = [];
    for (const token of tokens) {
      if (runs.length && runs[runs.length - 1][0] === token) runs[runs.length - 1][1] += 1;
      else runs.push([token, 1]);
    }
    return runs.map(([token, n]) => (n === 1 ? token : `${token}*${n}`)).join(" ");
  }
}

// --- The loop: steps at the environment's rate while the Play tab is on screen ----------------

function loop(now) {
  requestAnimationFrame(loop);
  check(); // a description that arrived before the Play tab's markup existed
  const root = $("webplay");
  if (root && root !== mounted) remount(root);
  const g = game;
  if (!g || !g.start || g.busy) return;
  if (g.paused || !visible($("webplay-canvas")) || document.hidden) {
    g.clock = null;
    return;
  }
  if (g.clock === null) g.clock = [now, 0];
  let due = Math.floor(((now - g.clock[0]) / 1000) * g.fps * g.speed) - g.clock[1];
  if (due <= 0) return;
  if (due > MAX_BEHIND) {
    g.clock[1] += due - 1; // a slow frame: drop the backlog rather than race to catch up
    due = 1;
  }
  g.clock[1] += 1;
  g.busy = true;
  g.step().catch((error) => g.note(`The model failed: ${error.message || error}`))
    .finally(() => { g.busy = false; });
}

// --- Controls: keys, touch, buttons ---------------------------------------------------------

function playing() {
  return game && game.config.engine === "browser" && visible($("webplay-canvas"));
}

function typing(event) {
  return event.target.closest && event.target.closest("input:not([type=range]), textarea, select, [contenteditable='true']");
}

document.addEventListener("keydown", (event) => {
  if (!playing() || typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  const role = ROLES[key];
  if (role && game.config.keys[role]) {
    event.preventDefault();
    event.stopImmediatePropagation(); // not the server engine's key script
    if (!game.held.has(role)) game.held.set(role, performance.now());
    if (game.paused && !event.repeat && !game.over()) game.paused = false;
    showHeld();
  } else if (key === "p") {
    togglePause();
  } else if (key === "r") {
    restart();
  }
}, true);

document.addEventListener("keyup", (event) => {
  if (!game) return;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  const role = ROLES[key];
  if (role) { game.held.delete(role); showHeld(); }
}, true);

window.addEventListener("blur", () => { if (game) { game.held.clear(); showHeld(); } });

function showHeld() {
  for (const button of document.querySelectorAll("#webplay-pad button")) {
    button.classList.toggle("held", !!game && game.held.has(button.dataset.role));
  }
}

function togglePause() {
  if (!game) return;
  game.paused = !game.paused;
  game.update();
}

function restart() {
  if (!game || !game.start) return;
  game.reset();
  game.paused = false;
  game.update();
}

function buildPad(config) {
  const pad = $("webplay-pad");
  if (!pad) return;
  pad.replaceChildren();
  for (const role of ROLE_ORDER) {
    const key = config.keys[role];
    if (!key) continue;
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.role = role;
    button.textContent = `${ROLE_LABELS[role]} ${key.label}`;
    button.title = `hold: ${key.label}`;
    const press = (event) => {
      event.preventDefault();
      if (!game) return;
      game.held.set(role, performance.now());
      if (game.paused && !game.over()) game.paused = false;
      showHeld();
    };
    const release = () => { if (game) { game.held.delete(role); showHeld(); } };
    button.addEventListener("pointerdown", press);
    button.addEventListener("pointerup", release);
    button.addEventListener("pointerleave", release);
    button.addEventListener("pointercancel", release);
    button.addEventListener("contextmenu", (event) => event.preventDefault());
    pad.append(button);
  }
}

function wireBar() {
  const root = $("webplay");
  if (!root || root.dataset.wired) return;
  root.dataset.wired = "1";
  $("webplay-pause").addEventListener("click", togglePause);
  $("webplay-restart").addEventListener("click", restart);
  $("webplay-undo").addEventListener("click", () => game && game.undo());
  $("webplay-fullscreen").addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else root.requestFullscreen?.();
  });
  for (const button of root.querySelectorAll("[data-speed]")) {
    button.addEventListener("click", () => {
      if (!game) return;
      game.speed = Number(button.dataset.speed);
      game.clock = null;
      for (const other of root.querySelectorAll("[data-speed]")) other.classList.toggle("on", other === button);
      game.update();
    });
  }
  $("webplay-timeline").addEventListener("input", (event) => {
    if (!game) return;
    game.paused = true;
    game.seek(Number(event.target.value));
  });
}

// --- New games: the server's description arrives in #webplay-config -------------------------

let mounted = null; // the #webplay element wired up (Gradio may render the tab's markup again)
let shownConfig = null;
let engineText = "";

function remount(root) {
  mounted = root;
  wireBar();
  if (!shownConfig) return;
  root.dataset.engine = shownConfig.engine;
  buildPad(shownConfig);
  if (game) {
    root.dataset.state = "ready";
    $("webplay-engine").textContent = engineText;
    game.seek(game.position);
  }
}

async function newGame(config) {
  shownConfig = config;
  mounted = $("webplay");
  wireBar();
  const root = mounted;
  root.dataset.engine = config.engine;
  root.dataset.state = "loading";
  game = null;
  if (config.engine !== "browser") return;
  if (typeof WebAssembly !== "object") {
    // No WebAssembly here: ask for the server engine (the picker's change starts a server game).
    const choice = [...document.querySelectorAll("#play-engine input")].find((i) => i.value.includes("server"));
    if (choice) choice.click();
    return;
  }
  $("webplay-engine").textContent = `Loading ${config.model}…`;
  buildPad(config);
  try {
    const ort = await loadOrt();
    const models = await modelSessions(ort, config);
    if (shownId !== config.id) return; // another game was asked for meanwhile
    const g = new Game(config, ort, models);
    await g.begin();
    if (shownId !== config.id) return;
    game = g;
    root.dataset.state = "ready";
    const threads = ort.env.wasm.numThreads;
    engineText = `Engine: in your browser (onnxruntime-web, wasm, ${threads} thread${threads > 1 ? "s" : ""})`;
    $("webplay-engine").textContent = engineText;
    g.note(`${config.name} from ${config.start}. Hold keys to play; ${config.noop_text}. ` +
      "P pauses, R restarts; drag the timeline to go back (the next step branches from there).");
    g.update();
  } catch (error) {
    root.dataset.state = "failed";
    $("webplay-engine").textContent = `The model could not start in this browser: ${error.message || error}`;
  }
}

function check() {
  const holder = $("webplay-config");
  const el = holder && holder.querySelector("#webplay-game");
  if (!el || !$("webplay")) return; // the Play tab's markup is not on the page yet
  const text = el.getAttribute("data-game");
  if (text === lastText) return;
  lastText = text;
  if (!text) {
    const message = el.getAttribute("data-message");
    const engine = $("webplay-engine");
    if (message && engine) engine.textContent = message;
    return;
  }
  let config;
  try { config = JSON.parse(text); } catch { return; }
  if (config.id === shownId) return;
  shownId = config.id;
  newGame(config);
}

new MutationObserver(check).observe(document.documentElement, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-game"] });
check();
requestAnimationFrame(loop);

window.worldsimPlay = {
  actionsText: () => (game ? game.actionsText() : ""),
  stats: () => (game ? {
    engine: game.config.engine, model: game.config.model, step: game.position, fps: game.rate(),
    realtime: game.config.fps, paused: game.paused, over: game.over(),
  } : null),
  pause: togglePause,
  restart,
};
