// The console: a hash router over five pages and the admin-token control in the header.
import { api, token } from "./api.js";
import { errorBox, h } from "./ui.js";
import * as evaluations from "./evaluations.js";
import * as live from "./live.js";
import * as models from "./models.js";
import * as tasks from "./tasks.js";
import * as tryQuery from "./try.js";

const PAGES = { tasks, models, evaluations, live, try: tryQuery };
const TITLES = { tasks: "Tasks", models: "Models", evaluations: "Evaluations", live: "Live", try: "Try a query" };
let cleanup = null;

function route() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const page = PAGES[name] ? name : "tasks";
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  document.title = `${TITLES[page]} · Prompt-OIRL`;
  if (cleanup) cleanup();
  cleanup = null;
  const view = document.getElementById("view");
  view.replaceChildren();
  view.dataset.page = page;
  try {
    cleanup = PAGES[page].render(view, rest.map(decodeURIComponent)) || null;
  } catch (err) {
    view.replaceChildren(errorBox(err));
  }
}

function tokenControl() {
  const area = document.getElementById("token-area");
  const draw = () => {
    if (token.get()) {
      area.replaceChildren(h("span", { class: "token-state set" }, "admin token set for this session"),
        h("button", { class: "link", id: "token-forget", onclick: () => { token.set(null); draw(); } }, "forget"));
      return;
    }
    const input = h("input", { type: "password", id: "token-input", placeholder: "admin token", autocomplete: "off",
      "aria-label": "admin token" });
    const form = h("form", { id: "token-form", onsubmit: (e) => {
      e.preventDefault();
      if (input.value.trim()) { token.set(input.value.trim()); draw(); }
    } }, input, h("button", { type: "submit" }, "use for this session"));
    area.replaceChildren(h("span", { class: "token-state" }, "Admin token:"), form);
  };
  draw();
}

// While the service is not ready (store down, no champion loaded, embedder warming) say so above
// every page, with the reasons, and look again every few seconds until it is.
async function readiness() {
  const banner = document.getElementById("banner");
  try {
    await api("/readyz");
    banner.hidden = true;
  } catch (err) {
    banner.replaceChildren(h("strong", {}, "The service is not ready: "), err.message.replace(/^not ready: /, ""));
    banner.hidden = false;
    setTimeout(readiness, 3000);
  }
}

tokenControl();
readiness();
window.addEventListener("hashchange", route);
route();
