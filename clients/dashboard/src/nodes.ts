// The node table: one row per node, kept by node id and updated in place on every snapshot.
// Each row carries a Drain button, which asks once more before it acts.

import type { NodeRow } from "./types.js";

const CONFIRM_MS = 5_000;

export class NodeTable {
  private readonly rows = new Map<string, HTMLTableRowElement>();
  private readonly confirming = new Map<string, number>();

  constructor(
    private readonly body: HTMLTableSectionElement,
    private readonly drain: (id: string) => void,
  ) {}

  show(nodes: readonly NodeRow[], canAct: boolean): void {
    const seen = new Set(nodes.map((node) => node.id));
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.remove();
        this.rows.delete(id);
      }
    }
    for (const node of nodes) {
      let row = this.rows.get(node.id);
      if (row === undefined) {
        row = this.body.insertRow();
        row.dataset["node"] = node.id;
        for (let cell = 0; cell < 11; cell += 1) {
          row.insertCell();
        }
        const button = document.createElement("button");
        button.type = "button";
        button.className = "act drain";
        button.addEventListener("click", () => this.clicked(node.id));
        row.cells[10]?.append(button);
        this.rows.set(node.id, row);
      }
      this.fill(row, node, canAct);
    }
    const ordered = [...this.rows.values()].sort((a, b) =>
      (a.dataset["node"] ?? "").localeCompare(b.dataset["node"] ?? ""),
    );
    this.body.append(...ordered);
  }

  private fill(row: HTMLTableRowElement, node: NodeRow, canAct: boolean): void {
    const texts: [string, string][] = [
      [node.id, ""],
      [node.healthy ? "healthy" : "down", node.healthy ? "healthy" : "down"],
      [node.circuit, node.circuit],
      [String(node.weight), "number"],
      [node.ramp < 1 ? `${Math.round(node.ramp * 100)} %` : "done", "number"],
      [node.draining ? "draining" : "no", node.draining ? "draining" : ""],
      [String(node.connections), "number"],
      [node.messagesInPerSecond.toFixed(1), "number"],
      [node.messagesOutPerSecond.toFixed(1), "number"],
      [node.latencyMs === null ? "–" : node.latencyMs.toFixed(1), "number"],
    ];
    texts.forEach(([text, className], index) => {
      const cell = row.cells[index];
      if (cell !== undefined && (cell.textContent !== text || cell.className !== className)) {
        cell.textContent = text;
        cell.className = className;
      }
    });
    row.title = node.url;
    const button = row.cells[10]?.querySelector("button");
    if (button) {
      const asking = (this.confirming.get(node.id) ?? 0) > Date.now();
      button.textContent = asking ? "Confirm drain" : "Drain";
      button.disabled = !canAct || node.draining || !node.healthy;
    }
  }

  private clicked(id: string): void {
    if ((this.confirming.get(id) ?? 0) > Date.now()) {
      this.confirming.delete(id);
      this.drain(id);
    } else {
      this.confirming.set(id, Date.now() + CONFIRM_MS);
    }
    const button = this.rows.get(id)?.cells[10]?.querySelector("button");
    if (button) {
      button.textContent = this.confirming.has(id) ? "Confirm drain" : "Drain";
    }
  }
}
