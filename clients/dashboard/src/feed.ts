// The live feed: one WebSocket to the gateway, opened again after a pause when it drops.
// The credential, when set, travels as the subprotocol `bearer.<credential>` (never in the URL).

import type { Frame } from "./types.js";

const RETRY_MS = [500, 1_000, 2_000, 5_000];

export interface FeedEvents {
  frame(frame: Frame): void;
  state(state: "live" | "reconnecting"): void;
}

export class Feed {
  private socket: WebSocket | null = null;
  private failures = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly url: string,
    private readonly credential: () => string | null,
    private readonly events: FeedEvents,
  ) {}

  /** Opens the feed, or opens it anew (with the credential as it is now). */
  open(): void {
    this.socket?.close();
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const shown = this.credential();
    const socket = new WebSocket(this.url, shown ? ["wspool", `bearer.${shown}`] : []);
    this.socket = socket;
    socket.onmessage = (event: MessageEvent<string>) => {
      this.failures = 0;
      this.events.frame(JSON.parse(event.data) as Frame);
    };
    socket.onopen = () => this.events.state("live");
    socket.onclose = () => {
      if (this.socket !== socket) {
        return;
      }
      this.events.state("reconnecting");
      const delay = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)] ?? 5_000;
      this.failures += 1;
      this.timer = setTimeout(() => this.open(), delay);
    };
  }
}
