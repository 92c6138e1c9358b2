// The dashboard page: the live feed drives the header, the node table and the charts; the
// forms act through the REST API with the admin credential. Without the credential (and on a
// gateway that checks credentials) every control that acts is disabled: the page only looks.

import { ApiFailure, api, credential, setCredential } from "./admin.js";
import { Charts } from "./charts.js";
import { Feed } from "./feed.js";
import { Inspector } from "./inspector.js";
import { NodeTable } from "./nodes.js";
import type { Snapshot } from "./types.js";

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) {
    throw new Error(`the page has no #${id}`);
  }
  return found as T;
}

const socketBase = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
const outcome = element<HTMLParagraphElement>("outcome");
const charts = new Charts(element("charts"));
const nodes = new NodeTable(element<HTMLTableElement>("nodes").tBodies[0] as HTMLTableSectionElement, (id) =>
  act(`drain ${id}`, () => api("POST", `/api/v1/nodes/${encodeURIComponent(id)}/drain`)),
);
const inspector = new Inspector(
  element("inspector-messages"),
  element("inspector-state"),
  `${socketBase}/ws`,
  credential,
);
let latest: Snapshot | null = null;

/** What the page exposes for its tests and for a look from the console. */
declare global {
  interface Window {
    dashboard: {
      snapshots: number;
      latest: () => Snapshot | null;
      points: () => number;
      chartLast: (title: string) => (number | null)[];
    };
  }
}
window.dashboard = {
  snapshots: 0,
  latest: () => latest,
  points: () => charts.length,
  chartLast: (title) => charts.last(title),
};

function canAct(): boolean {
  return (latest?.gateway.writesOpen ?? false) || credential() !== null;
}

function showAccess(): void {
  const allowed = canAct();
  for (const control of document.querySelectorAll<HTMLButtonElement | HTMLInputElement>(".act")) {
    if (!control.classList.contains("drain")) {
      control.disabled = !allowed;
    }
  }
  element("access-state").textContent = latest?.gateway.writesOpen
    ? "This gateway checks no credentials (--insecure): anyone who reaches it may act."
    : allowed
      ? "Acting with the credential given (kept in this tab only)."
      : "Read-only: give the admin credential to act.";
}

function show(snapshot: Snapshot): void {
  latest = snapshot;
  window.dashboard.snapshots += 1;
  element("gateway-id").textContent = snapshot.gateway.id;
  element("replicas").textContent = String(snapshot.gateway.replicas);
  element("store").textContent = snapshot.gateway.store;
  element("strategy").textContent = snapshot.config.strategy;
  element("connections").textContent = `${snapshot.pool.totalConnections} / ${snapshot.pool.maxConnections}`;
  const select = element<HTMLSelectElement>("strategy-select");
  if (document.activeElement !== select && !select.dataset["touched"]) {
    select.value = snapshot.config.strategy;
  }
  nodes.show(snapshot.nodes, canAct());
  charts.add(snapshot.point);
  showAccess();
}

/** Runs one action, and says in the page how it went. */
async function act(what: string, action: () => Promise<unknown>): Promise<unknown> {
  outcome.className = "";
  outcome.textContent = `${what}…`;
  try {
    const answer = await action();
    outcome.textContent = `${what}: done`;
    return answer;
  } catch (error) {
    outcome.className = "failed";
    outcome.textContent = `${what}: ${error instanceof ApiFailure ? error.message : String(error)}`;
    return undefined;
  }
}

const feed = new Feed(`${socketBase}/api/v1/dashboard/feed`, credential, {
  frame(frame) {
    if (frame.type === "history") {
      charts.reset(frame.series, frame.points);
    } else {
      show(frame);
    }
  },
  state(state) {
    element("feed-state").textContent = state;
    if (state === "reconnecting" && latest === null && credential() === null) {
      element("access-state").textContent =
        "This gateway shows the pool to its admins only: give the admin credential to watch.";
    }
  },
});

element<HTMLFormElement>("credential-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = element<HTMLInputElement>("credential");
  setCredential(input.value.trim() || null);
  input.value = "";
  showAccess();
  feed.open();
});
element("forget").addEventListener("click", () => {
  setCredential(null);
  showAccess();
  feed.open();
});

element<HTMLFormElement>("strategy-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const select = element<HTMLSelectElement>("strategy-select");
  delete select.dataset["touched"];
  void act(`strategy ${select.value}`, () => api("POST", "/api/v1/pool/config", { strategy: select.value }));
});
element("strategy-select").addEventListener("change", (event) => {
  (event.target as HTMLSelectElement).dataset["touched"] = "yes";
});

async function showConfig(): Promise<void> {
  const config = await act("read the config", () => api("GET", "/api/v1/pool/config"));
  if (config !== undefined) {
    element<HTMLTextAreaElement>("config-patch").value = JSON.stringify(config, null, 2);
  }
}
element("config-reload").addEventListener("click", () => void showConfig());
element<HTMLFormElement>("config-form").addEventListener("submit", (event) => {
  event.preventDefault();
  let patch: unknown;
  try {
    patch = JSON.parse(element<HTMLTextAreaElement>("config-patch").value);
  } catch (error) {
    outcome.className = "failed";
    outcome.textContent = `the config is not JSON: ${String(error)}`;
    return;
  }
  void act("change the config", () => api("POST", "/api/v1/pool/config", patch));
});

let found: string | null = null;
element<HTMLFormElement>("connection-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = element<HTMLInputElement>("connection-id").value.trim();
  const closeButton = element<HTMLButtonElement>("connection-close");
  void act(`find ${id}`, () => api("GET", `/api/v1/connections/${encodeURIComponent(id)}`)).then((record) => {
    found = record === undefined ? null : id;
    element("connection").textContent = record === undefined ? "" : JSON.stringify(record, null, 2);
    closeButton.hidden = found === null;
  });
});
element("connection-close").addEventListener("click", () => {
  if (found !== null) {
    const id = found;
    void act(`close ${id}`, () => api("DELETE", `/api/v1/connections/${encodeURIComponent(id)}`)).then((answer) => {
      if (answer !== undefined) {
        element("connection").textContent = JSON.stringify(answer, null, 2);
      }
    });
  }
});

element<HTMLFormElement>("inspector-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const channel = element<HTMLInputElement>("inspector-channel").value.trim();
  inspector.subscribe(channel).catch((error: unknown) => {
    element("inspector-state").textContent = `could not subscribe: ${String(error)}`;
  });
});
element("inspector-stop").addEventListener("click", () => void inspector.stop());

showAccess();
feed.open();
