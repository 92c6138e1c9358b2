// The message inspector: subscribes to one channel with the JavaScript client the gateway
// serves (/client/wspool.js, loaded when first used) and lists what flows, newest first.

import type * as Wspool from "../../js/src/wspool.js";

const CLIENT_MODULE = "/client/wspool.js";
const KEEP = 200;

export class Inspector {
  private client: Wspool.Client | null = null;

  constructor(
    private readonly list: HTMLOListElement,
    private readonly state: HTMLElement,
    private readonly socketUrl: string,
    private readonly credential: () => string | null,
  ) {}

  async subscribe(channel: string): Promise<void> {
    await this.stop();
    this.list.replaceChildren();
    this.state.textContent = `subscribing to ${channel}…`;
    const module: string = CLIENT_MODULE;
    const wspool = (await import(module)) as typeof Wspool;
    const shown = this.credential();
    const client = new wspool.Client(this.socketUrl, shown ? { token: shown } : {});
    this.client = client;
    client.on(channel, (message) => this.show(message));
    await client.connect();
    await client.subscribe(channel);
    this.state.textContent = `subscribed to ${channel} on ${client.serverId || "a node"}`;
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (client !== null) {
      await client.close();
      this.state.textContent = "stopped";
    }
  }

  private show(message: Wspool.ChannelMessage): void {
    const item = document.createElement("li");
    const time = new Date().toISOString().slice(11, 23);
    item.textContent =
      message.type === "data"
        ? `${time} ${message.offset ?? ""} ${JSON.stringify(message.payload)}`
        : `${time} resubscribed on ${message.serverId} (${message.recovered ? "recovered" : "gap"})`;
    this.list.prepend(item);
    while (this.list.childElementCount > KEEP) {
      this.list.lastElementChild?.remove();
    }
  }
}
